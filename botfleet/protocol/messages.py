"""The wire contract (docs/protocol.md), defined once.

The coordinator decodes requests with these structs (strictly: wrong types and
out-of-range values are rejected with a message naming the field) and the bot
decodes responses with them (leniently: unknown fields are ignored and every
field a bare server may leave out has a default). `/openapi.json` is generated
from this module, so the two sides and the document cannot drift apart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from botfleet.protocol.labels import Labels, Requirements
from botfleet.protocol.limits import JobLimits

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
# What a token may do (docs/protocol.md, "Roles and tokens").
Role = Literal["admin", "operator", "producer", "reader", "enroll"]

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


# ---------------------------------------------------------------- errors


class ErrorBody(Struct, kw_only=True):
    code: str
    message: str


class ErrorResponse(Struct, kw_only=True):
    error: ErrorBody


# ---------------------------------------------------------------- bot ⇄ coordinator


class Resources(Struct, kw_only=True):
    cpu_cores: NonNegInt = 0
    mem_mb: NonNegInt = 0


class RegisterRequest(Struct, kw_only=True):
    bot_key: NonEmpty
    instance_id: NonEmpty
    version: Version
    capabilities: Annotated[list[OpName], msgspec.Meta(min_length=1, max_length=1000)]
    resources: Resources = msgspec.field(default_factory=Resources)
    constraints: dict[str, Any] = msgspec.field(default_factory=dict)
    meta: dict[str, Any] = msgspec.field(default_factory=dict)
    # What the bot has (docs/protocol.md, "Labels"); jobs may require some of them.
    labels: Labels = msgspec.field(default_factory=dict)


class Auth(Struct, kw_only=True):
    access_token: str
    expires_in: int | None = None


class Assignment(Struct, kw_only=True):
    operations: list[str] = msgspec.field(default_factory=list)
    max_concurrency: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 1
    paused: bool = False


class BotConfig(Struct, kw_only=True):
    """Seconds, under the protocol's names; a bare server may send none of it."""

    heartbeat_interval: float | None = None
    claim_batch_size: int | None = None
    job_lease_ttl: float | None = None
    bot_lease_ttl: float | None = None
    features: list[str] = msgspec.field(default_factory=list)
    # The largest request body the coordinator takes: a bot checks a report against it
    # before sending, since a report that cannot fit can never be delivered.
    max_body_bytes: int | None = None


class RegisterResponse(Struct, kw_only=True):
    bot_id: str
    auth: Auth | None = None
    assignment: Assignment | None = None
    config: BotConfig | None = None


class RunningJob(Struct, kw_only=True):
    job_id: NonEmpty
    op: str = ""
    elapsed_ms: NonNegInt = 0
    progress: Fraction | None = None


class BotMetrics(Struct, kw_only=True):
    cpu: Fraction = 0.0
    mem_mb: Annotated[float, msgspec.Meta(ge=0)] = 0.0


class HeartbeatRequest(Struct, kw_only=True):
    instance_id: NonEmpty
    running: Annotated[list[RunningJob], msgspec.Meta(max_length=10_000)] = msgspec.field(
        default_factory=list
    )
    metrics: BotMetrics = msgspec.field(default_factory=BotMetrics)
    state: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    # Jobs this bot finished whose reports the coordinator has not confirmed yet (queued,
    # on their way, in the outbox): their leases are kept as for `running`, so a report
    # held up by the network does not let the job be handed to another bot meanwhile.
    # Left out when empty; a coordinator that does not know it ignores it.
    unreported: Annotated[list[NonEmpty], msgspec.Meta(max_length=10_000)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    # Feature `prefetch`: jobs claimed and not started yet (held in the bot's buffer):
    # their leases are kept as for `running`, and they are not counted as running.
    # Left out when empty; a coordinator that does not know it ignores it.
    held: Annotated[list[NonEmpty], msgspec.Meta(max_length=10_000)] | msgspec.UnsetType = (
        msgspec.UNSET
    )


class HeartbeatResponse(Struct, kw_only=True):
    lease_until: Timestamp | None = None
    assignment: Assignment | None = None
    config: BotConfig | None = None
    extended: dict[str, Timestamp] = msgspec.field(default_factory=dict)
    cancel: list[str] = msgspec.field(default_factory=list)
    command: BotCommand | None = None


class DeregisterRequest(Struct, kw_only=True):
    instance_id: NonEmpty


class ReportItem(Struct, kw_only=True):
    job_id: NonEmpty
    action: Literal["complete", "fail"]
    attempt: Attempt | None = None
    result: dict[str, Any] | None = None
    error: Annotated[str, msgspec.Meta(max_length=10_000)] | None = None
    retryable: bool = True
    retry_after_ms: Annotated[int, msgspec.Meta(ge=0, le=86_400_000)] | None = None


class BatchReportRequest(Struct, kw_only=True):
    instance_id: NonEmpty
    reports: Annotated[list[ReportItem], msgspec.Meta(min_length=1, max_length=1000)]


class ReportResult(Struct, kw_only=True):
    job_id: str
    status: ReportStatus


class BatchReportResponse(Struct, kw_only=True):
    results: list[ReportResult] = msgspec.field(default_factory=list)


class ClaimRequest(Struct, kw_only=True):
    bot_id: NonEmpty
    operations: Annotated[list[OpName], msgspec.Meta(min_length=1, max_length=1000)]
    # Up to 100; up to 1000 with the feature `prefetch`.
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_CLAIM_LIMIT)] = 1
    wait_ms: Annotated[int, msgspec.Meta(ge=0, le=30_000)] = 0
    # Feature `report_on_claim`: finished jobs' reports ride on the claim for the slots
    # they freed, one request instead of two; applied before the claim, answered in
    # `ClaimResponse.results` exactly as `POST /v1/jobs/report` answers them.
    # Left out of the JSON when unset: a claim without reports is the plain claim.
    instance_id: NonEmpty | msgspec.UnsetType = msgspec.UNSET
    reports: Annotated[list[ReportItem], msgspec.Meta(max_length=1000)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    # Feature `claim_id`: fresh for each claim, the same again on a retry of a claim whose
    # answer was lost; a repeat gets back the jobs already handed out for it.
    claim_id: NonEmpty | msgspec.UnsetType = msgspec.UNSET
    # Feature `prefetch`: how many jobs beyond `max_concurrency` the bot may hold
    # (claimed, not started yet) after this claim; left out: none, as before.
    prefetch: Annotated[int, msgspec.Meta(ge=0, le=MAX_CLAIM_LIMIT)] | msgspec.UnsetType = (
        msgspec.UNSET
    )


class ClaimedJob(Struct, kw_only=True):
    id: str
    op: str
    payload: dict[str, Any] = msgspec.field(default_factory=dict)
    lease_until: Timestamp | None = None
    attempt: int = 1
    timeout_s: float | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class ClaimResponse(Struct, kw_only=True):
    jobs: list[ClaimedJob] = msgspec.field(default_factory=list)
    results: list[ReportResult] | msgspec.UnsetType = msgspec.UNSET  # of the claim's `reports`


class CompleteRequest(Struct, kw_only=True):
    instance_id: NonEmpty
    attempt: Attempt | None = None
    result: dict[str, Any] = msgspec.field(default_factory=dict)


class FailRequest(Struct, kw_only=True):
    instance_id: NonEmpty
    attempt: Attempt | None = None
    error: Annotated[str, msgspec.Meta(max_length=10_000)]
    retryable: bool = True
    retry_after_ms: Annotated[int, msgspec.Meta(ge=0, le=86_400_000)] | None = None


class ReportAccepted(Struct, kw_only=True):
    status: Literal["accepted"] = "accepted"


class ProgressRequest(Struct, kw_only=True):
    instance_id: NonEmpty
    attempt: Attempt | None = None
    progress: Fraction
    message: Annotated[str, msgspec.Meta(max_length=1000)] | None = None


# ---------------------------------------------------------------- producer and operator


class SubmitJob(Struct, kw_only=True):
    op: OpName
    payload: dict[str, Any] = msgspec.field(default_factory=dict)
    priority: Annotated[int, msgspec.Meta(ge=-1_000_000, le=1_000_000)] = 0
    delay_ms: Annotated[int, msgspec.Meta(ge=0, le=31_536_000_000)] | None = None
    run_at: datetime | None = None
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 3
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=604_800)] | None = None
    idempotency_key: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    # Still queued this long after the submit: the job ends cancelled, error "expired".
    expires_in_ms: Annotated[int, msgspec.Meta(ge=1, le=31_536_000_000)] | None = None
    # Labels the bot that runs it must have: a value, or a list of allowed values.
    requires: Requirements | None = None
    # Queued until each of these jobs succeeded; in a bulk submit, "#N" names its N-th job.
    after: Annotated[list[NonEmpty], msgspec.Meta(max_length=100)] = msgspec.field(
        default_factory=list
    )
    # The limits it falls under, by name (op:OP limits apply without being named).
    limits: JobLimits = msgspec.field(default_factory=list)


class SubmitResponse(Struct, kw_only=True):
    id: str
    state: JobState


class BulkSubmitRequest(Struct, kw_only=True):
    jobs: Annotated[list[SubmitJob], msgspec.Meta(min_length=1, max_length=1000)]


class BulkSubmitResponse(Struct, kw_only=True):
    ids: list[str]


class JobView(Struct, kw_only=True):
    id: str
    op: str
    payload: dict[str, Any]
    state: JobState
    attempt: int
    max_attempts: int
    # The attempts charged against max_attempts. `attempt` is the fencing number, which
    # also rises for a claim whose answer never reached the bot and keeps rising across an
    # operator's retry, so it can pass max_attempts; this cannot. Left out by coordinators
    # older than it (a reader then falls back to `attempt`).
    attempts_used: NonNegInt | msgspec.UnsetType = msgspec.UNSET
    priority: int = 0
    result: dict[str, Any] | None = None
    error: str | None = None
    bot_id: str | None = None
    created_at: Timestamp
    run_at: Timestamp | None = None
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    lease_until: Timestamp | None = None
    progress: float | None = None
    progress_message: str | None = None
    timeout_s: float | None = None
    idempotency_key: str | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    # When a job still queued ends as expired (submit's expires_in_ms); None: never.
    expires_at: Timestamp | None = None
    # The name of the token that submitted it (None: submitted before tokens had names).
    submitted_by: str | None = None
    # The labels it requires, each key with its allowed values ({}: none).
    requires: dict[str, list[str]] = msgspec.field(default_factory=dict)
    limits: list[str] = msgspec.field(default_factory=list)  # the limits it names
    # Why a queued job is not handed out yet: the jobs it waits for ("waiting for
    # job_… (running)"), or no online bot can take it ("no online bot has gpu=a100").
    waiting_for: str | None = None
    # The jobs its submit's `after` named (ids, "#N" resolved), whether or not they have
    # ended. Left out by coordinators older than it (a reader then sees none).
    after: list[str] = msgspec.field(default_factory=list)


class JobList(Struct, kw_only=True):
    jobs: list[JobView]
    next_cursor: str | None = None


class BotView(Struct, kw_only=True):
    id: str
    name: str
    bot_key: str
    instance_id: str
    state: Literal["online", "offline"]
    lifecycle: str | None = None
    version: str
    capabilities: list[str]
    assignment: Assignment
    running: list[str] = msgspec.field(default_factory=list)
    # Jobs it holds and has not started (prefetch), as its last heartbeat listed them;
    # not among `running`. Left out by coordinators older than it.
    held: list[str] = msgspec.field(default_factory=list)
    pending_command: BotCommand | None = None
    registered_at: Timestamp
    last_heartbeat: Timestamp | None = None
    lease_until: Timestamp | None = None
    meta: dict[str, Any] = msgspec.field(default_factory=dict)
    metrics: BotMetrics | None = None
    # Set while an operator's revocation is in force: the bot is offline, its token is
    # refused and its bot_key may not register until `POST /v1/bots/{id}/allow`.
    revoked_at: Timestamp | None = None
    labels: dict[str, str] = msgspec.field(default_factory=dict)


class BotList(Struct, kw_only=True):
    bots: list[BotView]


AssignmentField = Literal["operations", "max_concurrency", "paused"]


class AssignmentPatch(Struct, kw_only=True):
    """An operator's change; it lasts across the bot's re-registrations. A field listed in
    `follow_bot` is handed back: it follows what the bot registers with again."""

    operations: Annotated[list[OpName], msgspec.Meta(max_length=1000)] | None = None
    max_concurrency: Annotated[int, msgspec.Meta(ge=0, le=10_000)] | None = None
    paused: bool | None = None
    follow_bot: Annotated[list[AssignmentField], msgspec.Meta(max_length=3)] = msgspec.field(
        default_factory=list
    )


class PatchBotRequest(Struct, kw_only=True):
    assignment: AssignmentPatch | None = None
    command: BotCommand | None = None


class Throughput(Struct, kw_only=True):
    window_s: int
    succeeded: int
    failed: int
    per_second: float


class Stats(Struct, kw_only=True):
    jobs: dict[str, int]
    jobs_by_op: dict[str, dict[str, int]]
    bots: dict[str, int]
    throughput: Throughput
    oldest_queued_age_s: float | None = None


class Health(Struct, kw_only=True):
    status: Literal["ok", "unavailable"]
    detail: str | None = None


# ---------------------------------------------------------------- roles and tokens


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
