"""Roles and tokens: who the calling token is, and the admin's calls that make, list
and revoke tokens (docs/protocol.md, "Roles and tokens")."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from botfleet.protocol.base import Struct, Timestamp

# What a token may do.
Role = Literal["admin", "operator", "producer", "reader", "enroll"]

TokenName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
]
MAX_TOKEN_LIFETIME_S = 10 * 365 * 86_400


class WhoAmI(Struct, kw_only=True):
    """Who the calling token is: its name and its role."""

    name: str
    role: Role


class CreateTokenRequest(Struct, kw_only=True):
    name: TokenName  # unique among tokens not revoked; recorded on the jobs it submits
    role: Role
    # The token stops working this long after it is made; None: only when revoked.
    expires_in_s: Annotated[int, msgspec.Meta(ge=1, le=MAX_TOKEN_LIFETIME_S)] | None = None


class CreatedToken(Struct, kw_only=True):
    id: str
    name: str
    role: Role
    token: str  # the secret, shown this once: the coordinator keeps only its hash
    expires_at: Timestamp | None = None


class TokenView(Struct, kw_only=True):
    id: str
    name: str
    role: Role
    created_at: Timestamp
    expires_at: Timestamp | None = None
    last_used_at: Timestamp | None = None  # to the minute: not written on every call
    revoked_at: Timestamp | None = None


class TokenList(Struct, kw_only=True):
    tokens: list[TokenView]
