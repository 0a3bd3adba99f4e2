"""The producer and operator calls: submitting jobs, the views of jobs and bots, an
operator's changes to a bot, the stats and the health (docs/protocol.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from botfleet.protocol.base import (
    BotCommand,
    JobState,
    NonEmpty,
    NonNegInt,
    OpName,
    Struct,
    Timestamp,
)
from botfleet.protocol.bot_calls import Assignment, BotMetrics
from botfleet.protocol.labels import Requirements
from botfleet.protocol.limits import JobLimits


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
