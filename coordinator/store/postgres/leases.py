"""Taking jobs back: from bots that went away, and from leases that ran out (the reaper)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from coordinator.store.base import ExpiryOutcome
from coordinator.store.postgres.tx import Tx
from coordinator.store.rows import expiry_from_rows
from coordinator.store.rules import BOT_LEASE_EXPIRED, LEASE_EXPIRED


async def release_jobs_of_bots(tx: Tx, bot_ids: Sequence[str], error: str) -> list[Any]:
    """End these bots' live attempts as `released`; queue each job again, or fail it with
    `error` when its attempts are spent. Returns rows of (id, op, state), by id."""
    if not bot_ids:
        return []
    rows = await tx.fetch("release_bot_jobs", list(bot_ids), tx.now, error)
    tx.changes.released(rows)
    return rows


async def release_lost_jobs(
    tx: Tx, bot_id: str, listed: Sequence[str], previous_heartbeat: Any
) -> tuple[str, ...]:
    """Queue again, uncharged, the jobs whose claim answer never reached this bot (see
    `Store.heartbeat`); `listed` are the ids this heartbeat lists."""
    if previous_heartbeat is None:
        return ()
    rows = await tx.fetch("release_lost_jobs", bot_id, list(listed), previous_heartbeat, tx.now)
    tx.changes.released(rows)
    return tuple(row["id"] for row in rows)


async def expire_leases(tx: Tx) -> ExpiryOutcome:
    """Bots past their lease go offline and give their jobs back; then jobs past their
    lease are queued again or failed. Both lock with SKIP LOCKED and re-check the
    lease, so reapers in several coordinators at once never act twice."""
    offline = [row["id"] for row in await tx.fetch("expire_bots", tx.now)]
    released = await release_jobs_of_bots(tx, offline, BOT_LEASE_EXPIRED)
    expired = await tx.fetch("expire_jobs", tx.now, LEASE_EXPIRED)
    tx.changes.released(expired)
    return expiry_from_rows(offline, [*released, *expired])
