"""The job verbs of the SQLite store, each run inside one write transaction (`Tx`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from coordinator.store.base import (
    JobRecord,
    NewJob,
    ReportOutcome,
    StoreError,
    SubmitOutcome,
)
from coordinator.store.ids import new_job_id
from coordinator.store.rules import claims_withheld
from coordinator.store.sqlite.rows import (
    Tx,
    dump_json,
    from_us,
    id_list,
    job_from_row,
    load_json,
    to_us,
)

TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})


def _require_job(tx: Tx, job_id: str) -> JobRecord:
    row = tx.one("job_by_id", {"id": job_id})
    if row is None:
        raise StoreError(f"job {job_id} vanished inside its own transaction")
    return job_from_row(row)


# ---------------------------------------------------------------- submit


def submit_jobs(tx: Tx, jobs: Sequence[NewJob]) -> list[SubmitOutcome]:
    now = from_us(tx.now)
    rows: list[dict[str, Any]] = [
        {
            "id": new_job_id(now),
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
            tx.available[job.op] += 1
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
    if bot["paused"] or limit <= 0 or claims_withheld(bool(bot["quarantined"]), bot["lifecycle"]):
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


# ---------------------------------------------------------------- operator verbs


def _end_attempt(tx: Tx, job_id: str, attempt: int, outcome: str) -> None:
    tx.run("end_attempt", {"job_id": job_id, "attempt": attempt, "outcome": outcome, "now": tx.now})


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
    tx.available[row["op"]] += 1
    return ReportOutcome.ACCEPTED, _require_job(tx, job_id)
