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
from coordinator.store.rows import clean_text
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
    # Rows unpacked by position (the statements' column order): a sqlite3.Row finds a
    # column by name with a scan of its columns.
    for row in tx.all("jobs_for_report", {"ids": ids}):
        job_id, op, state, attempt, attempt_base, max_attempts, bot, result_attempt = row[:8]
        limit_key, limited_job = row[8], row[9]
        snapshot = JobSnapshot(state, attempt, bot, attempt_base, max_attempts, result_attempt)
        batch.add_job(job_id, op, snapshot)
        if limited_job:
            limited[job_id] = (op, limit_key)
    for job_id, attempt, outcome in tx.all("attempts_for_report", {"ids": ids, "bot_id": bot_id}):
        batch.add_attempt(job_id, attempt, outcome)
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
    """One statement per kind of write for the whole batch (its rows a JSON array), not
    one per job: a statement's fixed cost is most of a one-row UPDATE's. Error text has
    its NUL replaced, as on PostgreSQL: SQLite's JSON functions end a string at one."""
    if batch.ended:
        errors = batch.ended_errors
        ended = [
            (job_id, attempt, outcome, clean_text(errors.get((job_id, attempt))))
            for (job_id, attempt), outcome in batch.ended.items()
        ]
        tx.run("end_attempts", {"now": tx.now, "rows": dump_json(ended)})
    by_statement: dict[str, list[tuple[Any, ...]]] = {}
    for change in batch.changes.values():
        fence = (change.job_id, change.read_state, change.read_attempt)
        if change.state == "succeeded":
            # The result as JSON text inside the rows: stored as it is encoded here.
            result = None if change.result is None else dump_json(change.result)
            row: tuple[Any, ...] = (*fence, result, change.result_attempt)
        elif change.state == "queued":
            row = (*fence, maybe_to_us(change.run_at), clean_text(change.error))
        else:
            row = (*fence, clean_text(change.error))
        by_statement.setdefault(_STATEMENTS[change.state], []).append(row)
    moved = sum(
        tx.run(name, {"now": tx.now, "rows": dump_json(rows)}).rowcount
        for name, rows in by_statement.items()
    )
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
