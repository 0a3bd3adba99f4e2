"""The values the store takes and gives: its verbs' inputs, the records it reads back,
and the outcomes of its writes. Frozen, so a verb cannot change its caller's input
(JobRecord, built for every job a claim hands out, is the exception: see it)."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class ReportOutcome(enum.Enum):
    ACCEPTED = "accepted"
    CONFLICT = "conflict"  # job terminal with another outcome, or lease lost (fail)
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"  # the job was never handed to this bot


@dataclass(frozen=True, slots=True)
class AssignmentRecord:
    operations: tuple[str, ...]
    max_concurrency: int
    paused: bool = False


@dataclass(frozen=True, slots=True)
class NewJob:
    op: str
    payload: dict[str, Any]
    run_at: datetime
    priority: int = 0
    max_attempts: int = 3
    timeout_s: float | None = None
    idempotency_key: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    expires_at: datetime | None = None  # still queued then: cancelled as expired
    submitted_by: str | None = None  # the name of the token that submitted it
    # Labels the bot must have: key -> allowed values (botfleet.protocol.labels.normalised).
    requires: dict[str, list[str]] | None = None
    # Jobs it waits for: ids, or "#N" for the job at index N of the same submit.
    after: tuple[str, ...] = ()
    limits: tuple[str, ...] = ()  # the limits it falls under, by name


# Not frozen, though never changed once built: a claim builds one per job, and a frozen
# dataclass's __init__ (object.__setattr__ per field) costs four times a plain one's.
@dataclass(slots=True)
class JobRecord:
    id: str
    op: str
    payload: dict[str, Any]
    state: str  # queued, running, succeeded, failed, cancelled
    priority: int
    attempt: int  # number of the latest attempt (0 before the first claim); the fencing token
    max_attempts: int
    created_at: datetime
    run_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    lease_until: datetime | None = None
    # The attempts charged against max_attempts (attempt - attempt_base): a lost claim
    # and the attempts before an operator's retry are not, so this never passes
    # max_attempts while `attempt` may.
    attempts_used: int = 0
    bot_id: str | None = None  # holder of the current (or last) attempt
    result: dict[str, Any] | None = None
    error: str | None = None
    progress: float | None = None
    progress_message: str | None = None
    timeout_s: float | None = None
    idempotency_key: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    expires_at: datetime | None = None
    submitted_by: str | None = None  # None for jobs older than role tokens
    requires: dict[str, list[str]] | None = None  # key -> allowed values; None: any bot
    waiting_on: int = 0  # dependencies (submit's `after`) that have not succeeded yet
    limits: tuple[str, ...] = ()  # the limits it names (sorted), op: limits aside
    after: tuple[str, ...] = ()  # the job ids submit's `after` named, whatever became of them


class HandedBack(list[JobRecord]):
    """A repeated claim's answer: the jobs its `claim_id` handed out that still run
    under the bot, maybe none (`rules.answers_repeat`). A list like any claim's answer,
    so a caller that wants only the jobs need not know; the type tells the long-poll
    that a repeat claims nothing new, so waiting could bring it nothing: it answers at
    once, even empty."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One hand-out of a job: the history that proves no two live leases overlapped."""

    job_id: str
    attempt: int
    bot_id: str
    claimed_at: datetime
    lease_until: datetime
    ended_at: datetime | None
    # succeeded, failed, expired, released, cancelled, revoked (a revocation ended it;
    # its reports are stale), lost (the claim answer never
    # reached the bot; not charged against max_attempts); None while live
    outcome: str | None
    # why it failed, expired or was released (its report's error, "lease expired"...)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Registration:
    bot_key: str
    instance_id: str
    name: str
    version: str
    capabilities: tuple[str, ...]
    resources: dict[str, Any]
    constraints: dict[str, Any]
    meta: dict[str, Any]
    token_hash: str
    token_expires_at: datetime
    lease_until: datetime
    default_max_concurrency: int
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BotRecord:
    id: str
    bot_key: str
    instance_id: str
    name: str
    version: str
    capabilities: tuple[str, ...]
    assignment: AssignmentRecord
    online: bool
    registered_at: datetime
    token_hash: str
    token_expires_at: datetime
    lease_until: datetime
    last_heartbeat: datetime | None = None
    lifecycle: str | None = None  # the state the bot last reported (IDLE, DRAINING, ...)
    pending_command: str | None = None  # drain, quarantine, release
    quarantined: bool = False  # an operator's quarantine in force (no `release` since)
    running: tuple[str, ...] = ()  # ids of jobs it runs (held ones left out)
    # Jobs it holds but has not started (prefetch), as its last heartbeat listed them.
    held: tuple[str, ...] = ()
    resources: dict[str, Any] = field(default_factory=dict)
    constraints: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    # Set while an operator's revocation is in force: its token and bot_key are refused.
    revoked_at: datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BotRoute:
    """What decides which jobs an online bot may take: its operations and its labels."""

    operations: tuple[str, ...]
    labels: dict[str, str]


@dataclass(frozen=True, slots=True)
class RevokeOutcome:
    bot: BotRecord
    requeued: tuple[str, ...]  # the jobs it held, queued again without using an attempt


class ForgetOutcome(enum.Enum):
    FORGOTTEN = "forgotten"
    NOT_FOUND = "not_found"
    ONLINE = "online"  # an online bot is deregistered by itself, or revoked, first
    RUNNING = "running"  # it still holds running jobs
    REVOKED = "revoked"  # forgetting would lift the ban on its bot_key: allow it first


@dataclass(frozen=True, slots=True)
class RegisterOutcome:
    bot: BotRecord
    created: bool  # first time this bot_key was seen
    released_job_ids: tuple[str, ...]  # jobs of a replaced instance, queued again


@dataclass(frozen=True, slots=True)
class HeartbeatOutcome:
    bot: BotRecord
    extended: dict[str, datetime]  # job_id -> new lease_until, for jobs it still holds
    cancel: tuple[str, ...]  # listed running jobs that were cancelled by an operator
    command: str | None
    released: tuple[str, ...] = ()  # its lost claim answers, queued again (uncharged)


@dataclass(frozen=True, slots=True)
class ReportInput:
    job_id: str
    action: str  # complete or fail
    attempt: int | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    retryable: bool = True
    retry_after_ms: int | None = None


@dataclass(frozen=True, slots=True)
class SubmitOutcome:
    job: JobRecord
    created: bool  # False when an idempotency_key matched an earlier job


@dataclass(frozen=True, slots=True)
class ExpiryOutcome:
    bots_offline: tuple[str, ...] = ()
    requeued: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ClaimOutlook:
    """What a claim would meet, read without a write transaction: whether the bot may
    claim at all (known and online; a claim answers None otherwise) and the earliest
    run_at of a queued job for the operations (None: none queued), and whether the
    claim's `claim_id` already has jobs running under the bot (a repeat: answer at once)."""

    bot_online: bool
    next_run_at: datetime | None
    handed_out: bool = False


@dataclass(frozen=True, slots=True)
class StatsRecord:
    jobs_by_state: dict[str, int]
    jobs_by_op: dict[str, dict[str, int]]
    bots_by_state: dict[str, int]  # online, offline
    succeeded_last_window: int
    failed_last_window: int
    window_s: int
    oldest_queued_at: datetime | None


@dataclass(frozen=True, slots=True)
class ClaimInput:
    """A claim: up to `limit` jobs for `operations`, each under a lease of
    max(lease_ttl_s, its timeout_s, or `default_timeout_s` for a job without one). With
    `claim_id`, a repeat of a claim that handed jobs out gets those (the ones still
    running under this bot) instead."""

    bot_id: str
    operations: Sequence[str]
    limit: int
    lease_ttl_s: float
    claim_id: str | None = None
    default_timeout_s: float | None = field(default=None, kw_only=True)
    # Jobs beyond max_concurrency the bot may hold unstarted after this claim (feature
    # `prefetch`; see `rules.holding_cap`).
    prefetch: int = field(default=0, kw_only=True)


@dataclass(frozen=True, slots=True)
class HeartbeatInput:
    bot_id: str
    instance_id: str
    running_job_ids: Sequence[str]  # the jobs it holds, running or with a report on its way
    lifecycle: str | None  # the state it reports (None: unchanged)
    metrics: dict[str, Any]
    bot_lease_ttl_s: float
    job_lease_ttl_s: float
    # Of jobs without their own, as in ClaimInput.
    default_timeout_s: float | None = field(default=None, kw_only=True)
    # Those of `running_job_ids` it holds unstarted (prefetch): shown apart from running.
    held_job_ids: Sequence[str] = field(default=(), kw_only=True)


@dataclass(frozen=True, slots=True)
class BotUpdate:
    """An operator's change to a bot; None leaves a field as it is."""

    operations: Sequence[str] | None = None
    max_concurrency: int | None = None
    paused: bool | None = None
    command: str | None = None  # drain, quarantine or release
    # Assignment fields handed back: they follow what the bot registers with again.
    follow_bot: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ProgressInput:
    job_id: str
    attempt: int | None  # None: the latest attempt this bot held
    progress: float
    message: str | None = None


@dataclass(frozen=True, slots=True)
class JobQuery:
    """A page of `list_jobs`: newest first, filtered by state, operation and submitter."""

    state: str | None = None
    op: str | None = None
    limit: int = 100
    cursor: str | None = None  # opaque, from the previous page
    submitted_by: str | None = None  # only the jobs this token name submitted
