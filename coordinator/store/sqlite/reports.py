"""Reports from bots (complete, fail, progress) in the SQLite store, one transaction each.

A batch is read with two queries (the jobs, and the attempts this bot held), decided by
the shared `ReportBatch`, and written with one `executemany` per statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from coordinator.store.base import ProgressInput, ReportInput, ReportOutcome, StoreError
from coordinator.store.limits import freed_by_reports
from coordinator.store.reports import ReportBatch
from coordinator.store.rules import JobSnapshot, refusal
from coordinator.store.sqlite.rows import dump_json, from_us, id_list, maybe_to_us
from coordinator.store.sqlite.tx import Tx

# The statement that writes a job's new state: SQLite's UPDATE costs by the columns it
# sets, so each outcome sets only its own.
_STATEMENTS = {
    "succeeded": "report_succeeded",
    "queued": "report_retried",
    "failed": "report_failed",
}


def report(tx: Tx, bot_id: str, reports: Sequence[ReportInput]) -> list[ReportOutcome]:
    ids = id_list(dict.fromkeys(item.job_id for item in reports))
    batch = ReportBatch(bot_id, from_us(tx.now), tx.retry_delay)
    limited: dict[str, tuple[str, str | None]] = {}
    for row in tx.all("jobs_for_report", {"ids": ids}):
        batch.add_job(row["id"], row["op"], JobSnapshot.of(row))
        if row["limited"]:
            limited[row["id"]] = (row["op"], row["limit_key"])
    for row in tx.all("attempts_for_report", {"ids": ids, "bot_id": bot_id}):
        batch.add_attempt(row["job_id"], row["attempt"], row["outcome"])
    outcomes = batch.apply_all(reports)
    _wake_for_limits(tx, limited, batch)
    _write(tx, batch)
    return outcomes


def _wake_for_limits(
    tx: Tx, limited: dict[str, tuple[str, str | None]], batch: ReportBatch
) -> None:
    for op, limit_key in freed_by_reports(limited, batch.changes.values()):
        tx.changes.freed(op, limit_key)


def _write(tx: Tx, batch: ReportBatch) -> None:
    if batch.ended:
        tx.many(
            "end_attempt",
            (
                {
                    "job_id": job_id,
                    "attempt": attempt,
                    "outcome": outcome,
                    "error": batch.ended_errors.get((job_id, attempt)),
                    "now": tx.now,
                }
                for (job_id, attempt), outcome in batch.ended.items()
            ),
        )
    by_statement: dict[str, list[dict[str, Any]]] = {}
    for change in batch.changes.values():
        by_statement.setdefault(_STATEMENTS[change.state], []).append(
            {
                "job_id": change.job_id,
                "run_at": maybe_to_us(change.run_at),
                "finished_at": maybe_to_us(change.finished_at),
                "result": None if change.result is None else dump_json(change.result),
                "result_attempt": change.result_attempt,
                "error": change.error,
                "read_state": change.read_state,
                "read_attempt": change.read_attempt,
            }
        )
    moved = sum(tx.many(name, rows).rowcount for name, rows in by_statement.items())
    if moved != len(batch.changes):  # one writer: the fence cannot fail, unless a bug
        raise StoreError(f"reports moved {moved} of {len(batch.changes)} jobs")
    tx.changes.ops.extend(batch.requeued_ops)
    tx.changes.done.extend(batch.finished)


def set_progress(tx: Tx, bot_id: str, progress: ProgressInput) -> ReportOutcome:
    params = {
        "job_id": progress.job_id,
        "bot_id": bot_id,
        "attempt": progress.attempt,
        "progress": progress.progress,
        "message": progress.message,
    }
    if tx.one("set_progress", params) is not None:
        return ReportOutcome.ACCEPTED
    found = tx.one("job_handed_to_bot", {"job_id": progress.job_id, "bot_id": bot_id})
    return refusal(bool(found and found["found"]), bool(found and found["handed"]))
