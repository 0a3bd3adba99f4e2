"""The role-token verbs of the PostgreSQL store that write, each in one transaction (`Tx`)."""

from __future__ import annotations

from datetime import datetime

from coordinator.store.api_tokens import ApiTokenRecord, NewApiToken, api_token_from_row
from coordinator.store.postgres.rows import DECODE
from coordinator.store.postgres.tx import Tx


async def create_api_token(tx: Tx, token: NewApiToken) -> ApiTokenRecord | None:
    row = await tx.fetchrow(
        "insert_api_token",
        token.id,
        token.name,
        token.role,
        token.token_hash,
        tx.now,
        token.expires_at,
    )
    return None if row is None else api_token_from_row(row, DECODE)


async def revoke_api_token(tx: Tx, token_id: str) -> ApiTokenRecord | None:
    row = await tx.fetchrow("revoke_api_token", token_id, tx.now)
    return None if row is None else api_token_from_row(row, DECODE)


async def touch_api_token(tx: Tx, token_id: str, stale_before: datetime) -> None:
    await tx.execute("touch_api_token", token_id, tx.now, stale_before)
