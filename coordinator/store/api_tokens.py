"""Role tokens as the store keeps them: the hash of the secret, never the secret."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from coordinator.store.rows import Decode

TOKEN_ID_PREFIX = "tok_"


def new_token_id() -> str:
    return f"{TOKEN_ID_PREFIX}{secrets.token_hex(8)}"


@dataclass(frozen=True, slots=True)
class NewApiToken:
    id: str
    name: str
    role: str
    token_hash: str  # sha256 of the secret, hex
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ApiTokenRecord:
    id: str
    name: str
    role: str
    token_hash: str
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


def api_token_from_row(row: Any, decode: Decode) -> ApiTokenRecord:
    return ApiTokenRecord(
        id=row["id"],
        name=row["name"],
        role=row["role"],
        token_hash=row["token_hash"],
        created_at=decode.moment(row["created_at"]),
        expires_at=decode.maybe_moment(row["expires_at"]),
        last_used_at=decode.maybe_moment(row["last_used_at"]),
        revoked_at=decode.maybe_moment(row["revoked_at"]),
    )
