"""An operator's hold on a bot in the PostgreSQL store: revoke, allow, forget; one
transaction (`Tx`) each. Each locks the bot row first, as heartbeats and claims do,
so a heartbeat or claim in flight in another coordinator finishes before a revocation
and the next one finds the bot offline."""

from __future__ import annotations

import coordinator.store.records as records
from coordinator.store.postgres.rows import bot_from_row
from coordinator.store.postgres.tx import Tx


async def revoke_bot(tx: Tx, bot_id: str) -> records.RevokeOutcome | None:
    if await tx.fetchval("revoke_bot", bot_id, tx.now) is None:
        return None
    rows = await tx.fetch("requeue_jobs_of_revoked_bot", bot_id, tx.now)
    tx.changes.released(rows)
    bot = bot_from_row(await tx.fetchrow("get_bot", bot_id))
    return records.RevokeOutcome(bot, tuple(row["id"] for row in rows))


async def allow_bot(tx: Tx, bot_id: str) -> records.BotRecord | None:
    if await tx.fetchval("allow_bot", bot_id) is None:
        return None
    return bot_from_row(await tx.fetchrow("get_bot", bot_id))


async def forget_bot(tx: Tx, bot_id: str) -> records.ForgetOutcome:
    row = await tx.fetchrow("bot_for_forget", bot_id)
    if row is None:
        return records.ForgetOutcome.NOT_FOUND
    if row["online"]:
        return records.ForgetOutcome.ONLINE
    if row["running"]:
        return records.ForgetOutcome.RUNNING
    if row["revoked_at"] is not None:
        return records.ForgetOutcome.REVOKED
    await tx.execute("forget_bot", bot_id)
    return records.ForgetOutcome.FORGOTTEN
