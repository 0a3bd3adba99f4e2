"""The job verbs of the PostgreSQL store, each run inside one transaction (`Tx`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from coordinator.store.base import (
    ClaimInput,
    HandedBack,
    JobRecord,
    NewJob,
    ReportOutcome,
    StoreError,
    SubmitOutcome,
)
from coordinator.store.ids import new_job_id
from coordinator.store.limits import limit_key, op_limit
from coordinator.store.postgres.dependencies import link_new_jobs
from coordinator.store.postgres.limits import limit_names, pick_under_limits
from coordinator.store.postgres.reads import unchanged
from coordinator.store.postgres.rows import job_from_row, jobs_from_rows
from coordinator.store.postgres.tx import Tx
from coordinator.store.rows import clean_text
from coordinator.store.rules import Claimant, answers_repeat, claimable_operations, holding_cap


async def submit_jobs(tx: Tx, jobs: Sequence[NewJob]) -> list[SubmitOutcome]:
    """One INSERT for the batch; a key seen before (or earlier in the batch) inserts
    nothing, and that job is read back instead."""
    jobs = [replace(job, idempotency_key=clean_text(job.idempotency_key)) for job in jobs]
    ids = [new_job_id(tx.now) for _ in jobs]
    inserted = await tx.fetch(
        "insert_jobs", tx.now, ids, [job.op for job in jobs], [job.payload for job in jobs],
        [job.priority for job in jobs], [job.max_attempts for job in jobs],
        [job.run_at for job in jobs], [job.timeout_s for job in jobs],
        [job.idempotency_key for job in jobs], [job.metadata for job in jobs],
        [job.expires_at for job in jobs], [job.submitted_by for job in jobs],
        [job.requires for job in jobs], [limit_key(job.limits) for job in jobs],
    )  # fmt: skip
    by_id = {row["id"]: job_from_row(row) for row in inserted}
    seen_keys = [
        job.idempotency_key
        for job, job_id in zip(jobs, ids, strict=True)
        if job_id not in by_id and job.idempotency_key is not None
    ]
    by_key: dict[str, JobRecord] = {}
    if seen_keys:
        rows = await tx.fetch("jobs_by_idempotency_key", seen_keys)
        by_key = {row["idempotency_key"]: job_from_row(row) for row in rows}
    outcomes: list[SubmitOutcome] = []
    for job, job_id in zip(jobs, ids, strict=True):
        if job_id in by_id:
            outcomes.append(SubmitOutcome(by_id[job_id], created=True))
        elif job.idempotency_key is not None and job.idempotency_key in by_key:
            outcomes.append(SubmitOutcome(by_key[job.idempotency_key], created=False))
        else:
            raise StoreError(f"job {job_id} was neither inserted nor found by its key")
    tx.changes.ops.extend(
        job.op for job, job_id in zip(jobs, ids, strict=True) if job_id in by_id and not job.after
    )
    if any(job.after for job in jobs):
        await link_new_jobs(tx, jobs, outcomes)
    return outcomes


async def claim_jobs(tx: Tx, claim: ClaimInput) -> list[JobRecord] | None:
    # The bot's row lock makes its claims (in every coordinator) take turns, and the
    # claim statement that follows counts its running jobs in a snapshot taken after
    # the previous claim committed: max_concurrency holds.
    bot = await tx.fetchrow("bot_for_claim", claim.bot_id)
    if bot is None:
        return None
    if claim.claim_id is not None:
        handed_out = await tx.fetch("jobs_of_claim", claim.claim_id, claim.bot_id)
        seen = bool(handed_out) or (
            await tx.fetchrow("claim_seen", claim.claim_id, claim.bot_id) is not None
        )
        if answers_repeat(claim, seen):
            return HandedBack(job_from_row(row) for row in handed_out)
    claimant = Claimant(set(bot["operations"]), bot["paused"], bot["quarantined"], bot["lifecycle"])
    wanted = claimable_operations(claimant, claim)
    if not wanted:
        return []
    cap = holding_cap(bot["max_concurrency"], claim.prefetch)
    picked = await pick_under_limits(tx, wanted, claim.limit, cap, claim.bot_id, bot["labels"])
    if picked is None:
        rows = await tx.fetch(
            "claim_jobs", claim.bot_id, wanted, claim.limit, cap, tx.now,
            claim.lease_ttl_s, claim.default_timeout_s, claim.claim_id, bot["labels"],
        )  # fmt: skip
    elif picked:
        rows = await tx.fetch(
            "take_jobs", picked, claim.bot_id, tx.now, claim.lease_ttl_s,
            claim.default_timeout_s, claim.claim_id,
        )  # fmt: skip
    else:
        rows = []
    return jobs_from_rows(rows)


async def cancel_job(tx: Tx, job_id: str) -> tuple[ReportOutcome, JobRecord | None]:
    # A running job's holder learns it from its next heartbeat's `cancel`.
    row = await tx.fetchrow("cancel_job", job_id, tx.now)
    if row is None:
        return await unchanged(tx, job_id)
    tx.changes.done.append(job_id)
    if row["limit_key"] is not None or op_limit(row["op"]) in await limit_names(tx):
        tx.changes.freed(row["op"], row["limit_key"])  # a place under its limits may be free
    return ReportOutcome.ACCEPTED, job_from_row(row)


async def retry_job(tx: Tx, job_id: str) -> tuple[ReportOutcome, JobRecord | None]:
    row = await tx.fetchrow("retry_job", job_id, tx.now)
    if row is None:
        return await unchanged(tx, job_id)
    tx.changes.ops.append(row["op"])
    return ReportOutcome.ACCEPTED, job_from_row(row)
