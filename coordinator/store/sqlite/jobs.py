"""The job verbs of the SQLite store, each run inside one write transaction (`Tx`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from coordinator.store.base import (
    ClaimInput,
    HandedBack,
    JobRecord,
    NewJob,
    ReportOutcome,
    SubmitOutcome,
)
from coordinator.store.ids import new_job_id
from coordinator.store.limits import limit_key, op_limit
from coordinator.store.rows import clean_text
from coordinator.store.rules import Claimant, answers_repeat, claimable_operations, holding_cap
from coordinator.store.sqlite.dependencies import link_new_jobs
from coordinator.store.sqlite.limits import limit_names, pick_under_limits
from coordinator.store.sqlite.reads import unchanged
from coordinator.store.sqlite.rows import (
    dump_json,
    from_us,
    id_list,
    job_from_row,
    jobs_from_rows,
    load_json,
    maybe_from_us,
    maybe_to_us,
    to_us,
)
from coordinator.store.sqlite.tx import Tx


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
            "idempotency_key": clean_text(job.idempotency_key),
            "metadata": dump_json(job.metadata),
            "expires_at": maybe_to_us(job.expires_at),
            "submitted_by": job.submitted_by,
            "requires": None if job.requires is None else dump_json(job.requires),
            "limit_key": limit_key(job.limits),
        }
        for job in jobs
    ]
    tx.many("insert_jobs", rows)
    keys = [row["idempotency_key"] for row in rows if row["idempotency_key"] is not None]
    by_key: dict[str, JobRecord] = {}
    if keys:
        found = tx.all("jobs_by_idempotency_key", {"keys": id_list(keys)})
        by_key = {row["idempotency_key"]: job_from_row(row) for row in found}
    outcomes: list[SubmitOutcome] = []
    for job, row in zip(jobs, rows, strict=True):
        if job.idempotency_key is not None:
            record = by_key[row["idempotency_key"]]
            created = record.id == row["id"]
        else:
            record = _new_record(job, row)
            created = True
        if created and not job.after:
            tx.changes.ops.append(job.op)
        outcomes.append(SubmitOutcome(job=record, created=created))
    if any(job.after for job in jobs):
        link_new_jobs(tx, jobs, outcomes)
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
        expires_at=maybe_from_us(row["expires_at"]),
        submitted_by=job.submitted_by,
        requires=job.requires,
        limits=tuple(sorted(set(job.limits))),
    )


def claim_jobs(tx: Tx, claim: ClaimInput) -> list[JobRecord] | None:
    bot = tx.one("bot_for_claim", {"id": claim.bot_id})
    if bot is None:
        return None
    if claim.claim_id is not None:
        key = {"claim_id": claim.claim_id, "bot_id": claim.bot_id}
        handed_out = tx.all("jobs_of_claim", key)
        if answers_repeat(claim, bool(handed_out) or tx.one("claim_seen", key) is not None):
            return HandedBack(job_from_row(row) for row in handed_out)
    claimant = Claimant(
        set(load_json(bot["operations"])), bool(bot["paused"]), bool(bot["quarantined"]),
        bot["lifecycle"],
    )  # fmt: skip
    wanted = claimable_operations(claimant, claim)
    if not wanted:
        return []
    cap = holding_cap(bot["max_concurrency"], claim.prefetch)
    params = {
        "bot_id": claim.bot_id,
        "now": tx.now,
        "ttl_s": claim.lease_ttl_s,
        "default_timeout_s": claim.default_timeout_s,
    }
    picked = pick_under_limits(tx, wanted, claim.limit, cap, claim.bot_id, bot["labels"])
    if picked is None:
        rows = tx.all(
            "claim_jobs",
            {
                **params,
                "ops": dump_json(wanted),
                "limit": claim.limit,
                "max_concurrency": cap,
                "labels": bot["labels"],
            },
        )
    elif picked:
        rows = tx.all("take_jobs", {**params, "seqs": dump_json(picked)})
    else:
        rows = []
    if rows:
        # SQLite has no writable CTEs: the attempts are a second statement.
        seqs = dump_json([row["seq"] for row in rows])
        tx.run("insert_attempts", {"now": tx.now, "claim_id": claim.claim_id, "seqs": seqs})
    # RETURNING gives no order; hand the jobs out in queue order.
    rows.sort(key=lambda row: (-row["priority"], row["seq"]))
    return jobs_from_rows(rows)


def cancel_job(tx: Tx, job_id: str) -> tuple[ReportOutcome, JobRecord | None]:
    # A running job's holder learns it from its next heartbeat's `cancel`.
    row = tx.one("cancel_job", {"job_id": job_id, "now": tx.now})
    if row is None:
        return unchanged(tx, job_id)
    params = {
        "job_id": job_id,
        "attempt": row["attempt"],
        "outcome": "cancelled",
        "error": None,
        "now": tx.now,
    }
    tx.run("end_attempt", params)
    tx.changes.done.append(job_id)
    if row["limit_key"] is not None or op_limit(row["op"]) in limit_names(tx):
        tx.changes.freed(row["op"], row["limit_key"])  # a place under its limits may be free
    return ReportOutcome.ACCEPTED, job_from_row(row)


def retry_job(tx: Tx, job_id: str) -> tuple[ReportOutcome, JobRecord | None]:
    row = tx.one("retry_job", {"job_id": job_id, "now": tx.now})
    if row is None:
        return unchanged(tx, job_id)
    tx.changes.ops.append(row["op"])
    return ReportOutcome.ACCEPTED, job_from_row(row)
