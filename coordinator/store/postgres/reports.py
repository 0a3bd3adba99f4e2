"""Reports from bots (complete, fail, progress) in the PostgreSQL store.

A batch locks the reported jobs (id order), reads this bot's attempts in a fresh
snapshot (so a report another coordinator applied while we waited is seen), is decided
by the shared `ReportBatch`, and is written with its notices in one statement whose
WHERE re-checks each job's state and attempt as locked (the fence).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from coordinator.store.base import (
    ClaimInput,
    JobRecord,
    ProgressInput,
    ReportInput,
    ReportOutcome,
    StoreError,
)
from coordinator.store.limits import freed_by_reports
from coordinator.store.postgres.jobs import claim_jobs
from coordinator.store.postgres.limits import wake_for_freed
from coordinator.store.postgres.tx import Tx
from coordinator.store.reports import ReportBatch
from coordinator.store.rows import clean_text
from coordinator.store.rules import JobSnapshot, refusal


async def report(tx: Tx, bot_id: str, reports: Sequence[ReportInput]) -> list[ReportOutcome]:
    # PostgreSQL text cannot hold NUL; copied only when it has one (this runs per report).
    reports = [
        replace(item, error=clean_text(item.error)) if item.error and "\x00" in item.error else item
        for item in reports
    ]
    job_ids = sorted({item.job_id for item in reports})
    batch = ReportBatch(bot_id, tx.now, tx.retry_delay)
    locked = await tx.fetch("jobs_for_report", job_ids)
    for row in locked:
        batch.add_job(row["id"], row["op"], JobSnapshot.of(row))
    limited = {row["id"]: (row["op"], row["limit_key"]) for row in locked if row["limited"]}
    for row in await tx.fetch("attempts_for_report", [row["id"] for row in locked], bot_id):
        batch.add_attempt(row["job_id"], row["attempt"], row["outcome"])
    outcomes = batch.apply_all(reports)
    for op, limit_key in freed_by_reports(limited, batch.changes.values()):
        tx.changes.freed(op, limit_key)
    if tx.changes.places_to_settle:  # before _write sends this transaction's notices
        await wake_for_freed(tx)
    await _write(tx, batch)
    return outcomes


async def _write(tx: Tx, batch: ReportBatch) -> None:
    if not batch.changes and not batch.ended:
        return
    # JSON parameters, encoded by the connection's codec (msgspec): the jobs as their
    # JobChange dataclasses (objects keyed by its field names, which the statement's
    # record names), the attempts as the statement names them.
    rows = list(batch.changes.values())
    errors = batch.ended_errors
    ended = [
        {"job_id": job_id, "attempt": attempt, "outcome": outcome, "error": errors.get(key)}
        for key, outcome in batch.ended.items()
        for job_id, attempt in [key]
    ]
    tx.changes.ops.extend(batch.requeued_ops)
    tx.changes.done.extend(batch.finished)
    tx.changes.notified = True
    moved = await tx.fetchval("write_reports", rows, tx.now, ended, tx.channel, tx.notices())
    if moved != len(rows):  # the rows are locked: the fence cannot fail, unless a bug
        raise StoreError(f"reports moved {moved} of {len(rows)} locked jobs")


async def report_and_claim(
    tx: Tx, claim: ClaimInput, reports: Sequence[ReportInput]
) -> tuple[list[ReportOutcome], list[JobRecord] | None]:
    # The bot's row first, then the reported jobs: the order a heartbeat and a claim
    # take them in. The other way round, a heartbeat renewing these jobs' leases in
    # another coordinator would deadlock with us.
    # An offline bot has no row to lock: it stays without jobs even if it comes back
    # meanwhile, so that `claim_jobs` never locks the bot after the jobs.
    bot = await tx.fetchrow("bot_for_claim", claim.bot_id)
    outcomes = await report(tx, claim.bot_id, reports) if reports else []
    if bot is None:
        return outcomes, None
    return outcomes, await claim_jobs(tx, claim)


async def set_progress(tx: Tx, bot_id: str, progress: ProgressInput) -> ReportOutcome:
    """One fenced UPDATE (no transaction needed); on a miss, a read of why it missed."""
    text = clean_text(progress.message)
    job_id = progress.job_id
    if await tx.fetchval("set_progress", job_id, bot_id, progress.attempt, progress.progress, text):
        return ReportOutcome.ACCEPTED
    found = await tx.fetchrow("job_handed_to_bot", job_id, bot_id)
    return refusal(found["found"], found["handed"])
