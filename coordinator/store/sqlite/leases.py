"""Taking jobs back: from bots that went away, and from leases that ran out (the reaper)."""

from __future__ import annotations

from collections.abc import Sequence
from sqlite3 import Row

from coordinator.store.base import ExpiryOutcome
from coordinator.store.rows import expiry_from_rows
from coordinator.store.rules import BOT_LEASE_EXPIRED, LEASE_EXPIRED
from coordinator.store.sqlite.rows import id_list
from coordinator.store.sqlite.tx import Tx


def release_jobs_of_bots(tx: Tx, bot_ids: Sequence[str], error: str) -> list[Row]:
    """End the live attempts of these bots' running jobs as `released`; queue each job
    again, or fail it with `error` when its attempts are spent. Returns rows of (id, op,
    state), by id."""
    if not bot_ids:
        return []
    bots = id_list(bot_ids)
    params = {"now": tx.now, "outcome": "released", "bots": bots, "error": error}
    tx.run("end_attempts_of_bots", params)
    rows = tx.all("release_bot_jobs", {"now": tx.now, "bots": bots, "error": error})
    rows.sort(key=lambda row: str(row["id"]))
    tx.changes.released(rows)
    return rows


def release_lost_jobs(
    tx: Tx, bot_id: str, previous_heartbeat: int | None, listed: str
) -> tuple[str, ...]:
    """Queue again, uncharged, the jobs whose claim answer never reached this bot (see
    `Store.heartbeat`); `listed` is the JSON list of the ids this heartbeat lists."""
    if previous_heartbeat is None:
        return ()
    params = {"now": tx.now, "bot_id": bot_id, "since": previous_heartbeat, "ids": listed}
    requeued = tx.all("release_lost_jobs", params)
    if not requeued:
        return ()
    tx.many(
        "end_attempt",
        (
            {
                "job_id": row["id"],
                "attempt": row["attempt"],
                "outcome": "lost",
                "error": None,
                "now": tx.now,
            }
            for row in requeued
        ),
    )
    tx.changes.ops.extend(row["op"] for row in requeued)
    tx.changes.left_running.extend((row["op"], row["limit_key"]) for row in requeued)
    return tuple(row["id"] for row in requeued)


def expire_leases(tx: Tx) -> ExpiryOutcome:
    """Bots past their lease go offline and give their jobs back; then jobs past their
    lease are queued again or failed. Each step is a set-based UPDATE that only matches
    what is still live, so a second reaper right after finds nothing to do."""
    offline = [row["id"] for row in tx.all("expire_bots", {"now": tx.now})]
    released = release_jobs_of_bots(tx, offline, BOT_LEASE_EXPIRED)
    tx.run("end_expired_attempts", {"now": tx.now, "error": LEASE_EXPIRED})
    expired = tx.all("expire_jobs", {"now": tx.now, "error": LEASE_EXPIRED})
    tx.changes.released(expired)
    return expiry_from_rows(offline, [*released, *expired])
