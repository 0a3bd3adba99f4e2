"""The reaper's housekeeping on PostgreSQL: one batch of expiry, deletion and forgetting."""

from __future__ import annotations

from coordinator.store.postgres.tx import Tx
from coordinator.store.retention import EXPIRED, Retention, SweepOutcome, cutoffs, sweep_outcome


async def sweep(tx: Tx, retention: Retention) -> SweepOutcome:
    """Up to `retention.batch_size` rows of each kind, in this one transaction; rows
    another coordinator's sweep holds are left to it (SKIP LOCKED)."""
    due = cutoffs(retention, tx.now)
    expired = await tx.fetch("expire_queued_jobs", tx.now, EXPIRED, due.limit)
    tx.changes.moved(expired)
    deleted = 0
    if due.finished_before is not None:
        deleted = int(await tx.fetchval("delete_finished_jobs", due.finished_before, due.limit))
    forgotten = 0
    if due.bots_before is not None:
        forgotten = int(await tx.fetchval("forget_bots", due.bots_before, due.limit))
    return sweep_outcome(due.limit, [row["id"] for row in expired], deleted, forgotten)
