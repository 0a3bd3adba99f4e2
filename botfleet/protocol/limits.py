"""Limits: fleet-wide caps on the jobs running under a name (`max_running`) and on the
rate they start at (`per_second`, a token bucket of `burst` starts). A job names the
limits it falls under; a limit named `op:OP` covers every job of OP unnamed."""

from __future__ import annotations

from typing import Annotated

import msgspec

OP_LIMIT_PREFIX = "op:"
MAX_JOB_LIMITS = 4  # the limits one job may name: the claim checks each

# No `,`: a job's limits are stored joined by it.
LimitName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=110, pattern=r"^[A-Za-z0-9_.:/-]+$")
]
JobLimits = Annotated[list[LimitName], msgspec.Meta(max_length=MAX_JOB_LIMITS)]


class PutLimitRequest(msgspec.Struct, kw_only=True):
    # Unset: that cap is off.
    max_running: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] | None = None
    per_second: Annotated[float, msgspec.Meta(gt=0, le=1_000_000)] | None = None
    burst: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1


class LimitView(msgspec.Struct, kw_only=True):
    name: str
    max_running: int | None = None
    per_second: float | None = None
    burst: int = 1
    running: int  # jobs under it running now
    # Starts the token bucket allows right now (`burst` when there is no rate).
    tokens: float
    # Jobs started under it per second, measured over the last 10 s across the fleet.
    starts_per_second: float = 0.0
    # Jobs ready to run under it that it keeps from starting right now.
    held_back: int = 0


class LimitList(msgspec.Struct, kw_only=True):
    limits: list[LimitView]
