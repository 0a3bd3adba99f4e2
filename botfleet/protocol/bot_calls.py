"""The bot ⇄ coordinator calls: register, heartbeat, claim, report, progress and
deregister (docs/protocol.md)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from botfleet.protocol.base import (
    MAX_CLAIM_LIMIT,
    Attempt,
    BotCommand,
    Fraction,
    NonEmpty,
    NonNegInt,
    OpName,
    ReportStatus,
    Struct,
    Timestamp,
    Version,
)
from botfleet.protocol.labels import Labels


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
