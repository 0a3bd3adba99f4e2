"""What every message shares: the base struct, the constrained field types, the
features a coordinator may offer, the claim bounds and the error body."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
OpName = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]
Version = Annotated[str, msgspec.Meta(pattern=r"^\d+\.\d+\.\d+$")]
NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
Fraction = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
# An attempt number a bot reports; bounded so that no store integer can overflow on it.
Attempt = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]
Timestamp = str  # RFC 3339 UTC, e.g. 2026-01-19T10:15:00Z

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
BotCommand = Literal["drain", "quarantine", "release"]
ReportStatus = Literal["accepted", "conflict", "not_found", "forbidden"]

TERMINAL_STATES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})

# Features a coordinator may list in `config.features` (docs/protocol.md, extensions).
FEATURE_LONG_POLL = "long_poll"
FEATURE_BATCH_REPORT = "batch_report"
FEATURE_PROGRESS = "progress"
FEATURE_DEREGISTER = "deregister"
FEATURE_REPORT_ON_CLAIM = "report_on_claim"
FEATURE_CLAIM_ID = "claim_id"
FEATURE_LOGS = "logs"
FEATURE_LOGS_BULK = "logs_bulk"  # POST /v1/jobs/logs: several jobs' lines in one call
# Claims beyond the free slots (`prefetch`, `limit` up to 1000), `held` in heartbeats, and
# POST /v1/jobs/release to give unstarted jobs back without using an attempt.
FEATURE_PREFETCH = "prefetch"
ALL_FEATURES = (
    FEATURE_LONG_POLL,
    FEATURE_BATCH_REPORT,
    FEATURE_PROGRESS,
    FEATURE_DEREGISTER,
    FEATURE_REPORT_ON_CLAIM,
    FEATURE_CLAIM_ID,
    FEATURE_LOGS,
    FEATURE_LOGS_BULK,
    FEATURE_PREFETCH,
)

# The largest claim: 100 for a coordinator without `prefetch` (the seed's bound).
MAX_CLAIM_LIMIT = 1000
PLAIN_CLAIM_LIMIT = 100


class Struct(msgspec.Struct):
    """Base of every message; each is keyword-only, and unknown fields are ignored."""


# The body of every error answer (docs/protocol.md, "Errors").
class ErrorBody(Struct, kw_only=True):
    code: str
    message: str


class ErrorResponse(Struct, kw_only=True):
    error: ErrorBody
