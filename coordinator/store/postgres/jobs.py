"""The job verbs and the reaper of the PostgreSQL store, each inside one transaction (`Tx`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from coordinator.store.base import (
    ExpiryOutcome,
    JobRecord,
    NewJob,
    ReportInput,
    ReportOutcome,
    StoreError,
    SubmitOutcome,
)
from coordinator.store.ids import new_job_id
from coordinator.store.postgres.bots import release_jobs_of_bots
from coordinator.store.postgres.reports import LockedJob, ReportBatch
from coordinator.store.postgres.rows import job_from_row
from coordinator.store.postgres.tx import Tx, clean_text, snapshot
from coordinator.store.rules import BOT_LEASE_EXPIRED, LEASE_EXPIRED, claims_withheld


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
    tx.changes.ops.extend(record.op for record in by_id.values())
    return outcomes


async def claim_jobs(
    tx: Tx, bot_id: str, operations: Sequence[str], limit: int, lease_ttl_s: float
) -> list[JobRecord] | None:
    # The bot's row lock makes its claims (in every coordinator) take turns, and the
    # claim statement that follows counts its running jobs in a snapshot taken after
    # the previous claim committed: max_concurrency holds.
    bot = await tx.fetchrow("lock_bot_for_claim", bot_id)
    if bot is None:
        return None
    assigned = set(bot["operations"])
    wanted = [op for op in dict.fromkeys(operations) if op in assigned]
    if bot["paused"] or not wanted or limit <= 0:
        return []
    if claims_withheld(bot["quarantined"], bot["lifecycle"]):
        return []
    rows = await tx.fetch(
        "claim_jobs", bot_id, wanted, limit, bot["max_concurrency"], tx.now, lease_ttl_s
    )
    return [job_from_row(row) for row in rows]


async def report_and_claim(
    tx: Tx,
    bot_id: str,
    reports: Sequence[ReportInput],
    operations: Sequence[str],
    limit: int,
    lease_ttl_s: float,
) -> tuple[list[ReportOutcome], list[JobRecord] | None]:
    # The bot's row first, then the reported jobs: the order a heartbeat and a claim
    # take them in. The other way round, a heartbeat renewing these jobs' leases in
    # another coordinator would deadlock with us.
    # An offline bot has no row to lock: it stays without jobs even if it comes back
    # meanwhile, so that `claim_jobs` never locks the bot after the jobs.
    bot = await tx.fetchrow("lock_bot_for_claim", bot_id)
    outcomes = await report(tx, bot_id, reports) if reports else []
    if bot is None:
        return outcomes, None
    return outcomes, await claim_jobs(tx, bot_id, operations, limit, lease_ttl_s)


async def report(tx: Tx, bot_id: str, reports: Sequence[ReportInput]) -> list[ReportOutcome]:
    """Lock the named jobs (id order), read this bot's attempts in a fresh snapshot (so a
    report applied by another coordinator while we waited is seen), decide each report
    in order, and write the outcome and its notices in one statement."""
    reports = [replace(item, error=clean_text(item.error)) for item in reports]
    job_ids = sorted({item.job_id for item in reports})
    locked = {
        row["id"]: LockedJob(row["id"], row["op"], snapshot(row))
        for row in await tx.fetch("lock_jobs_for_report", job_ids)
    }
    batch = ReportBatch(bot_id, tx.now, tx.retry_delay, locked)
    for row in await tx.fetch("attempts_for_report", list(locked), bot_id):
        batch.add_attempt(
            row["job_id"], row["attempt"], row["bot_id"], row["outcome"], row["ended_at"] is None
        )
    outcomes = batch.apply_all(reports)
    await _write_reports(tx, batch)
    return outcomes


async def _write_reports(tx: Tx, batch: ReportBatch) -> None:
    if not batch.changes and not batch.ended:
        return
    ids = list(batch.changes)
    rows = [batch.changes[job_id] for job_id in ids]
    fences = [batch.jobs[job_id] for job_id in ids]
    ended = list(batch.ended)
    tx.changes.ops.extend(batch.requeued_ops)
    tx.changes.done.extend(batch.finished)
    tx.changes.notified = True
    moved = await tx.fetchval(
        "write_reports", ids, [c.state for c in rows], [c.run_at for c in rows],
        [c.finished_at for c in rows], [c.result for c in rows],
        [c.result_attempt for c in rows], [c.error for c in rows],
        [f.read_state for f in fences], [f.read_attempt for f in fences], tx.now,
        [job_id for job_id, _ in ended], [attempt for _, attempt in ended],
        [batch.ended[key] for key in ended], tx.channel, tx.notices(),
    )  # fmt: skip
    if moved != len(ids):  # the rows are locked: the fence cannot fail, unless a bug
        raise StoreError(f"reports moved {moved} of {len(ids)} locked jobs")


async def cancel_job(tx: Tx, job_id: str) -> tuple[ReportOutcome, JobRecord | None]:
    # A running job's holder learns it from its next heartbeat's `cancel`.
    row = await tx.fetchrow("cancel_job", job_id, tx.now)
    if row is None:
        return await _unchanged(tx, job_id)
    tx.changes.done.append(job_id)
    return ReportOutcome.ACCEPTED, job_from_row(row)


async def retry_job(tx: Tx, job_id: str) -> tuple[ReportOutcome, JobRecord | None]:
    row = await tx.fetchrow("retry_job", job_id, tx.now)
    if row is None:
        return await _unchanged(tx, job_id)
    tx.changes.ops.append(row["op"])
    return ReportOutcome.ACCEPTED, job_from_row(row)


async def _unchanged(tx: Tx, job_id: str) -> tuple[ReportOutcome, JobRecord | None]:
    row = await tx.fetchrow("get_job", job_id)
    if row is None:
        return ReportOutcome.NOT_FOUND, None
    return ReportOutcome.CONFLICT, job_from_row(row)


async def expire_leases(tx: Tx) -> ExpiryOutcome:
    """Bots past their lease go offline and give their jobs back; then jobs past their
    lease are queued again or failed. Both lock with SKIP LOCKED and re-check the
    lease, so reapers in several coordinators at once never act twice."""
    offline = [row["id"] for row in await tx.fetch("expire_bots", tx.now)]
    released = await release_jobs_of_bots(tx, offline, BOT_LEASE_EXPIRED)
    expired = await tx.fetch("expire_jobs", tx.now, LEASE_EXPIRED)
    tx.changes.moved(expired)
    moved = [*released, *expired]
    return ExpiryOutcome(
        bots_offline=tuple(offline),
        requeued=tuple(row["id"] for row in moved if row["state"] == "queued"),
        failed=tuple(row["id"] for row in moved if row["state"] == "failed"),
    )
