"""The job verbs of the SQLite store, each run inside one write transaction (`Tx`)."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Sequence
from typing import Any

from coordinator.store.base import (
    JobRecord,
    NewJob,
    ReportInput,
    ReportOutcome,
    StoreError,
    SubmitOutcome,
)
from coordinator.store.rules import Decision, Effect, JobSnapshot, decide_report
from coordinator.store.sqlite_rows import (
    Tx,
    dump_json,
    from_us,
    id_list,
    job_from_row,
    load_json,
    to_us,
)

TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})
NO_ERROR_TEXT = "the job failed without an error message"


def new_job_id() -> str:
    return "job_" + secrets.token_hex(8)


def _require_job(tx: Tx, job_id: str) -> JobRecord:
    row = tx.one("job_by_id", {"id": job_id})
    if row is None:
        raise StoreError(f"job {job_id} vanished inside its own transaction")
    return job_from_row(row)


# ---------------------------------------------------------------- submit


def submit_jobs(tx: Tx, jobs: Sequence[NewJob]) -> list[SubmitOutcome]:
    rows: list[dict[str, Any]] = [
        {
            "id": new_job_id(),
            "op": job.op,
            "payload": dump_json(job.payload),
            "priority": job.priority,
            "max_attempts": job.max_attempts,
            "now": tx.now,
            "run_at": to_us(job.run_at),
            "timeout_s": job.timeout_s,
            "idempotency_key": job.idempotency_key,
            "metadata": dump_json(job.metadata),
        }
        for job in jobs
    ]
    tx.many("insert_job", rows)
    keys = [job.idempotency_key for job in jobs if job.idempotency_key is not None]
    by_key: dict[str, JobRecord] = {}
    if keys:
        found = tx.all("jobs_by_idempotency_keys", {"keys": id_list(keys)})
        by_key = {row["idempotency_key"]: job_from_row(row) for row in found}
    outcomes: list[SubmitOutcome] = []
    for job, row in zip(jobs, rows, strict=True):
        if job.idempotency_key is not None:
            record = by_key[job.idempotency_key]
            created = record.id == row["id"]
        else:
            record = _new_record(job, row)
            created = True
        if created:
            tx.available.add(job.op)
        outcomes.append(SubmitOutcome(job=record, created=created))
    return outcomes


def _new_record(job: NewJob, row: dict[str, Any]) -> JobRecord:
    """The record of a job just inserted, without reading it back."""
    return JobRecord(
        id=row["id"],
        op=job.op,
        payload=job.payload,
        state="queued",
        priority=job.priority,
        attempt=0,
        max_attempts=job.max_attempts,
        created_at=from_us(row["now"]),
        run_at=from_us(row["run_at"]),
        timeout_s=job.timeout_s,
        idempotency_key=job.idempotency_key,
        metadata=job.metadata,
    )


# ---------------------------------------------------------------- claim


def claim_jobs(
    tx: Tx, bot_id: str, operations: Sequence[str], limit: int, lease_ttl_s: float
) -> list[JobRecord] | None:
    bot = tx.one("bot_by_id", {"id": bot_id})
    if bot is None or not bot["online"]:
        return None
    if bot["paused"] or limit <= 0:
        return []
    assigned = set(load_json(bot["operations"]))
    wanted = [op for op in dict.fromkeys(operations) if op in assigned]
    running_row = tx.one("count_running_of_bot", {"bot_id": bot_id})
    running = running_row[0] if running_row is not None else 0
    room = min(limit, bot["max_concurrency"] - running)
    if not wanted or room <= 0:
        return []
    rows = tx.all(
        "claim_jobs",
        {
            "bot_id": bot_id,
            "ops": dump_json(wanted),
            "limit": room,
            "now": tx.now,
            "ttl_s": lease_ttl_s,
        },
    )
    tx.many(
        "insert_attempt",
        (
            {
                "job_id": row["id"],
                "attempt": row["attempt"],
                "bot_id": bot_id,
                "now": tx.now,
                "lease_until": row["lease_until"],
            }
            for row in rows
        ),
    )
    # RETURNING gives no order; hand the jobs out in queue order.
    rows.sort(key=lambda row: (-row["priority"], row["seq"]))
    return [job_from_row(row) for row in rows]


# ---------------------------------------------------------------- reports


def _snapshot(row: sqlite3.Row) -> JobSnapshot:
    return JobSnapshot(
        state=row["state"],
        attempt=row["attempt"],
        bot_id=row["bot_id"],
        attempt_base=row["attempt_base"],
        max_attempts=row["max_attempts"],
        result_attempt=row["result_attempt"],
    )


def _held_attempts(tx: Tx, bot_id: str, job_ids: Sequence[str]) -> dict[str, dict[int, Any]]:
    held: dict[str, dict[int, Any]] = {job_id: {} for job_id in job_ids}
    for row in tx.all("attempts_of_bot", {"ids": id_list(job_ids), "bot_id": bot_id}):
        held[row["job_id"]][row["attempt"]] = row["outcome"]
    return held


def report(tx: Tx, bot_id: str, reports: Sequence[ReportInput]) -> list[ReportOutcome]:
    """Read every named job and this bot's attempts at once, decide each report in order
    against the state the earlier reports of the batch left, and write each effect."""
    job_ids = list(dict.fromkeys(item.job_id for item in reports))
    found = tx.all("jobs_for_report", {"ids": id_list(job_ids)})
    snapshots = {row["id"]: _snapshot(row) for row in found}
    ops = {row["id"]: row["op"] for row in found}
    held = _held_attempts(tx, bot_id, job_ids)
    outcomes: list[ReportOutcome] = []
    for item in reports:
        job = snapshots.get(item.job_id)
        decision = decide_report(job, held[item.job_id], bot_id, item, tx.retry_delay)
        outcomes.append(decision.outcome)
        if job is not None and decision.effect is not Effect.NONE:
            snapshots[item.job_id] = _apply(
                tx, item, job, decision, held[item.job_id], ops[item.job_id]
            )
    return outcomes


def _apply(
    tx: Tx,
    item: ReportInput,
    job: JobSnapshot,
    decision: Decision,
    held: dict[int, Any],
    op: str,
) -> JobSnapshot:
    """Write one accepted report; return the job as it now stands."""
    attempt = decision.attempt if decision.attempt is not None else job.attempt
    job_id = item.job_id
    if decision.effect is Effect.SUCCEED:
        tx.run(
            "succeed_job",
            {
                "job_id": job_id,
                "result": dump_json(item.result if item.result is not None else {}),
                "attempt": attempt,
                "now": tx.now,
            },
        )
        if job.state == "running":
            # The live attempt ends: it succeeded, or another attempt's result won.
            outcome = "succeeded" if job.attempt == attempt else "cancelled"
            _end_attempt(tx, job_id, job.attempt, outcome)
            if job.attempt in held and held[job.attempt] is None:
                held[job.attempt] = outcome
        tx.finished.append(job_id)
        return _evolve(job, state="succeeded", result_attempt=attempt)
    error = item.error if item.error else NO_ERROR_TEXT
    _end_attempt(tx, job_id, attempt, "failed")
    held[attempt] = "failed"
    if decision.effect is Effect.RETRY:
        run_at = tx.now + round(decision.retry_delay_s * 1_000_000)
        tx.run("retry_job_later", {"job_id": job_id, "run_at": run_at, "error": error})
        tx.available.add(op)
        return _evolve(job, state="queued")
    tx.run("fail_job", {"job_id": job_id, "error": error, "now": tx.now})
    tx.finished.append(job_id)
    return _evolve(job, state="failed")


def _end_attempt(tx: Tx, job_id: str, attempt: int, outcome: str) -> None:
    tx.run("end_attempt", {"job_id": job_id, "attempt": attempt, "outcome": outcome, "now": tx.now})


def _evolve(job: JobSnapshot, state: str, result_attempt: int | None = None) -> JobSnapshot:
    return JobSnapshot(
        state=state,
        attempt=job.attempt,
        bot_id=job.bot_id,
        attempt_base=job.attempt_base,
        max_attempts=job.max_attempts,
        result_attempt=result_attempt if result_attempt is not None else job.result_attempt,
    )


def set_progress(
    tx: Tx, bot_id: str, job_id: str, attempt: int | None, progress: float, message: str | None
) -> ReportOutcome:
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


# ---------------------------------------------------------------- operator verbs


def cancel_job(tx: Tx, job_id: str) -> tuple[ReportOutcome, JobRecord | None]:
    row = tx.one("job_by_id", {"id": job_id})
    if row is None:
        return ReportOutcome.NOT_FOUND, None
    if row["state"] in TERMINAL_STATES:
        return ReportOutcome.CONFLICT, job_from_row(row)
    if row["state"] == "running":
        # The holder learns it from its next heartbeat's `cancel`; its lease ends now.
        _end_attempt(tx, job_id, row["attempt"], "cancelled")
    tx.run("cancel_job", {"job_id": job_id, "now": tx.now})
    tx.finished.append(job_id)
    return ReportOutcome.ACCEPTED, _require_job(tx, job_id)


def retry_job(tx: Tx, job_id: str) -> tuple[ReportOutcome, JobRecord | None]:
    row = tx.one("job_by_id", {"id": job_id})
    if row is None:
        return ReportOutcome.NOT_FOUND, None
    if row["state"] not in ("failed", "cancelled"):
        return ReportOutcome.CONFLICT, job_from_row(row)
    tx.run("retry_job", {"job_id": job_id, "now": tx.now})
    tx.available.add(row["op"])
    return ReportOutcome.ACCEPTED, _require_job(tx, job_id)
