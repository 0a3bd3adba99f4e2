"""Reports from bots (complete, fail, progress) in the SQLite store, one transaction each.

A batch is read with two queries (the jobs, and the attempts this bot held), decided
report by report in memory with the shared rules (`rules.py`) against the state the
earlier reports of the batch left, and written with one `executemany` per statement.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from coordinator.store.base import ReportInput, ReportOutcome
from coordinator.store.rules import Decision, Effect, JobSnapshot, decide_report
from coordinator.store.sqlite.rows import Tx, dump_json, id_list

NO_ERROR_TEXT = "the job failed without an error message"


@dataclass(slots=True)
class _Writes:
    """What a batch changes. A job's last write wins: each statement sets its whole new
    state, and only a retry can be followed by another effect (a complete). An
    attempt's first end wins, as the `ended_at IS NULL` guard in SQL has it."""

    jobs: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    attempts: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)

    def job(self, statement: str, params: dict[str, Any]) -> None:
        self.jobs[params["job_id"]] = (statement, params)

    def end_attempt(self, job_id: str, attempt: int, outcome: str, now: int) -> None:
        self.attempts.setdefault(
            (job_id, attempt),
            {"job_id": job_id, "attempt": attempt, "outcome": outcome, "now": now},
        )

    def flush(self, tx: Tx) -> None:
        by_statement: dict[str, list[dict[str, Any]]] = {}
        for statement, params in self.jobs.values():
            by_statement.setdefault(statement, []).append(params)
        for statement, rows in by_statement.items():
            tx.many(statement, rows)
        if self.attempts:
            tx.many("end_attempt", self.attempts.values())


def _snapshot(row: sqlite3.Row) -> JobSnapshot:
    return JobSnapshot(
        state=row["state"],
        attempt=row["attempt"],
        bot_id=row["bot_id"],
        attempt_base=row["attempt_base"],
        max_attempts=row["max_attempts"],
        result_attempt=row["result_attempt"],
    )


def _held_attempts(tx: Tx, bot_id: str, job_ids: Sequence[str]) -> dict[str, dict[int, str | None]]:
    """For each job, the attempts handed to this bot and their outcomes (None: live)."""
    held: dict[str, dict[int, str | None]] = {job_id: {} for job_id in job_ids}
    for row in tx.all("attempts_of_bot", {"ids": id_list(job_ids), "bot_id": bot_id}):
        held[row["job_id"]][row["attempt"]] = row["outcome"]
    return held


def report(tx: Tx, bot_id: str, reports: Sequence[ReportInput]) -> list[ReportOutcome]:
    job_ids = list(dict.fromkeys(item.job_id for item in reports))
    found = tx.all("jobs_for_report", {"ids": id_list(job_ids)})
    snapshots = {row["id"]: _snapshot(row) for row in found}
    ops = {row["id"]: row["op"] for row in found}
    held = _held_attempts(tx, bot_id, job_ids)
    writes = _Writes()
    outcomes: list[ReportOutcome] = []
    for item in reports:
        job = snapshots.get(item.job_id)
        decision = decide_report(job, held[item.job_id], bot_id, item, tx.retry_delay)
        outcomes.append(decision.outcome)
        if job is not None and decision.effect is not Effect.NONE:
            snapshots[item.job_id] = _apply(
                tx, writes, item, job, decision, held[item.job_id], ops[item.job_id]
            )
    writes.flush(tx)
    return outcomes


def _apply(
    tx: Tx,
    writes: _Writes,
    item: ReportInput,
    job: JobSnapshot,
    decision: Decision,
    held: dict[int, str | None],
    op: str,
) -> JobSnapshot:
    """Record the writes of one accepted report; return the job as it now stands."""
    attempt = decision.attempt if decision.attempt is not None else job.attempt
    job_id = item.job_id
    if decision.effect is Effect.SUCCEED:
        result = item.result if item.result is not None else {}
        writes.job(
            "succeed_job",
            {"job_id": job_id, "result": dump_json(result), "attempt": attempt, "now": tx.now},
        )
        if job.state == "running":
            # The live attempt ends: it succeeded, or another attempt's result won.
            outcome = "succeeded" if job.attempt == attempt else "cancelled"
            writes.end_attempt(job_id, job.attempt, outcome, tx.now)
            if job.attempt in held and held[job.attempt] is None:
                held[job.attempt] = outcome
        tx.finished.append(job_id)
        return replace(job, state="succeeded", result_attempt=attempt)
    error = item.error if item.error else NO_ERROR_TEXT
    writes.end_attempt(job_id, attempt, "failed", tx.now)
    held[attempt] = "failed"
    if decision.effect is Effect.RETRY:
        run_at = tx.now + round(decision.retry_delay_s * 1_000_000)
        writes.job("retry_job_later", {"job_id": job_id, "run_at": run_at, "error": error})
        tx.available[op] += 1
        return replace(job, state="queued")
    writes.job("fail_job", {"job_id": job_id, "error": error, "now": tx.now})
    tx.finished.append(job_id)
    return replace(job, state="failed")


def set_progress(
    tx: Tx, bot_id: str, job_id: str, attempt: int | None, progress: float, message: str | None
) -> ReportOutcome:
    """Accepted only from the current lease holder, like a fail."""
    row = tx.one("jobs_for_report", {"ids": id_list([job_id])})
    if row is None:
        return ReportOutcome.NOT_FOUND
    held = _held_attempts(tx, bot_id, [job_id])[job_id]
    if not held:
        return ReportOutcome.FORBIDDEN
    wanted = attempt if attempt is not None else max(held)
    holds_lease = row["state"] == "running" and row["bot_id"] == bot_id and row["attempt"] == wanted
    if not holds_lease:
        return ReportOutcome.CONFLICT
    tx.run("set_progress", {"job_id": job_id, "progress": progress, "message": message})
    return ReportOutcome.ACCEPTED
