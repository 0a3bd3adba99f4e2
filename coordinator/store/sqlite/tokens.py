"""The role-token verbs of the SQLite store that write, each in one transaction (`Tx`)."""

from __future__ import annotations

from datetime import datetime

from coordinator.store.api_tokens import ApiTokenRecord, NewApiToken, api_token_from_row
from coordinator.store.sqlite.rows import DECODE, maybe_to_us, to_us
from coordinator.store.sqlite.tx import Tx


def create_api_token(tx: Tx, token: NewApiToken) -> ApiTokenRecord | None:
    params = {
        "id": token.id,
        "name": token.name,
        "role": token.role,
        "token_hash": token.token_hash,
        "now": tx.now,
        "expires_at": maybe_to_us(token.expires_at),
    }
    row = tx.one("insert_api_token", params)
    return None if row is None else api_token_from_row(row, DECODE)


def revoke_api_token(tx: Tx, token_id: str) -> ApiTokenRecord | None:
    row = tx.one("revoke_api_token", {"id": token_id, "now": tx.now})
    return None if row is None else api_token_from_row(row, DECODE)


def touch_api_token(tx: Tx, token_id: str, stale_before: datetime) -> None:
    params = {"id": token_id, "now": tx.now, "stale_before": to_us(stale_before)}
    tx.run("touch_api_token", params)
