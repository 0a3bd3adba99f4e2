"""An operator's hold on a bot in the SQLite store: revoke, allow, forget; one
transaction (`Tx`) each."""

from __future__ import annotations

import coordinator.store.records as records
from coordinator.store.sqlite.reads import load_bot, require_bot
from coordinator.store.sqlite.tx import Tx


def revoke_bot(tx: Tx, bot_id: str) -> records.RevokeOutcome | None:
    if tx.one("revoke_bot", {"id": bot_id, "now": tx.now}) is None:
        return None
    params = {"bot_id": bot_id, "now": tx.now}
    tx.run("end_attempts_of_revoked_bot", params)
    rows = tx.all("requeue_jobs_of_revoked_bot", params)
    rows.sort(key=lambda row: str(row["id"]))
    tx.changes.released(rows)
    return records.RevokeOutcome(require_bot(tx, bot_id), tuple(row["id"] for row in rows))


def allow_bot(tx: Tx, bot_id: str) -> records.BotRecord | None:
    if tx.one("allow_bot", {"id": bot_id}) is None:
        return None
    return load_bot(tx, bot_id)


def forget_bot(tx: Tx, bot_id: str) -> records.ForgetOutcome:
    row = tx.one("bot_for_forget", {"id": bot_id})
    if row is None:
        return records.ForgetOutcome.NOT_FOUND
    if row["online"]:
        return records.ForgetOutcome.ONLINE
    if row["running"]:
        return records.ForgetOutcome.RUNNING
    if row["revoked_at"] is not None:
        return records.ForgetOutcome.REVOKED
    tx.run("forget_bot", {"id": bot_id})
    return records.ForgetOutcome.FORGOTTEN
