"""The store interface: every verb the coordinator needs, and nothing about SQL.

Correctness lives in the database. Each verb is one transaction, so several
coordinator processes sharing one database (PostgreSQL) stay correct: a job is
never held under two live leases, a report is applied at most once, the
reaper may run in every process at once.

Time comes from the injected clock; retry delays from the injected policy.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


class StoreError(Exception):
    """The store failed (unreachable, corrupt); not the client's fault."""


class StoreFull(StoreError):
    """The database has no room for the write (disk full, or a size limit): nothing of
    it was written."""


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


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One hand-out of a job: the history that proves no two live leases overlapped."""

    job_id: str
    attempt: int
    bot_id: str
    claimed_at: datetime
    lease_until: datetime
    ended_at: datetime | None
    # succeeded, failed, expired, released, cancelled, lost (the claim answer never
    # reached the bot; not charged against max_attempts); None while live
    outcome: str | None


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
    running: tuple[str, ...] = ()  # ids of jobs it holds in state running
    resources: dict[str, Any] = field(default_factory=dict)
    constraints: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


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
    run_at of a queued job for the operations (None: none queued)."""

    bot_online: bool
    next_run_at: datetime | None


@dataclass(frozen=True, slots=True)
class StatsRecord:
    jobs_by_state: dict[str, int]
    jobs_by_op: dict[str, dict[str, int]]
    bots_by_state: dict[str, int]  # online, offline
    succeeded_last_window: int
    failed_last_window: int
    window_s: int
    oldest_queued_at: datetime | None


class StoreListener(Protocol):
    """Told when a waiting claim or `GET /v1/jobs/{id}?wait_ms` may have an answer.

    A store calls it for changes made by any process sharing the database
    (PostgreSQL: LISTEN/NOTIFY) or at least by this process (SQLite).
    """

    def jobs_available(self, operations: Sequence[str], count: int | None = None) -> None:
        """`count` jobs for these operations became claimable; None: an unknown number
        (the listener then wakes every waiting claim for them)."""
        ...

    def job_finished(self, job_id: str) -> None: ...


RetryDelay = Callable[[int], float]
"""Seconds to wait before attempt `n + 1` after attempt `n` failed (exponential, jittered)."""


class Store(Protocol):
    # ---- life
    async def open(self) -> None:
        """Connect and create or migrate the schema (versioned migrations)."""
        ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise StoreError when the database cannot answer."""
        ...

    def set_listener(self, listener: StoreListener) -> None: ...

    # ---- bots
    async def register_bot(self, registration: Registration) -> RegisterOutcome:
        """Upsert by bot_key (bot_id is stable per bot_key).

        Same instance_id again: same bot, token replaced. A new instance_id: the old
        instance's running jobs are released at once (the attempt ends as `released`;
        the job is queued again, or failed with "bot instance replaced" when its
        attempts are spent, so a job that crashes its bot cannot loop forever).
        `paused` survives a new registration; operations and max_concurrency follow the registration
        (capabilities; constraints["max_concurrency"] or default_max_concurrency).
        """
        ...

    async def get_bot(self, bot_id: str) -> BotRecord | None: ...

    async def list_bots(self) -> list[BotRecord]: ...

    async def heartbeat(
        self,
        bot_id: str,
        instance_id: str,
        running_job_ids: Sequence[str],
        lifecycle: str | None,
        metrics: dict[str, Any],
        bot_lease_ttl_s: float,
        job_lease_ttl_s: float,
    ) -> HeartbeatOutcome | None:
        """Renew the bot lease and the leases of the listed jobs it still holds.

        None when the bot is unknown or offline (the caller answers 404). A job's new
        lease is max(job_lease_ttl_s, its timeout_s) from now. Jobs listed but in
        state `cancelled` come back in `cancel`. A pending command is returned on
        every heartbeat until the reported lifecycle shows it took effect (drain:
        DRAINING or SHUTDOWN; quarantine: QUARANTINED; release: anything else).

        Lost claim answers: a job this bot holds that was handed out before its
        previous heartbeat arrived, and that neither that heartbeat nor this one
        lists, never reached the bot. It is queued again at once (in `released`), its
        attempt ends as `lost`, and that attempt is not charged against max_attempts
        (attempt_base goes up with it); the attempt number still rises at the next
        claim, so a late report of the lost attempt is fenced as any other's.
        """
        ...

    async def update_bot(
        self,
        bot_id: str,
        operations: Sequence[str] | None = None,
        max_concurrency: int | None = None,
        paused: bool | None = None,
        command: str | None = None,
    ) -> BotRecord | None: ...

    async def deregister_bot(self, bot_id: str, instance_id: str) -> tuple[str, ...] | None:
        """Mark offline at once and release the jobs it still holds (as above); None if unknown."""
        ...

    # ---- jobs
    async def submit_jobs(self, jobs: Sequence[NewJob]) -> list[SubmitOutcome]:
        """Insert in one transaction; an idempotency_key seen before returns that job."""
        ...

    async def claim_jobs(
        self, bot_id: str, operations: Sequence[str], limit: int, lease_ttl_s: float
    ) -> list[JobRecord] | None:
        """Atomically hand out up to `limit` queued jobs whose run_at has come.

        Priority (higher first), then FIFO. Only operations in both `operations` and
        the bot's assignment; nothing while paused; never more than
        assignment.max_concurrency running for this bot. Each job's attempt goes up by
        one and its lease is max(lease_ttl_s, timeout_s) from now. None when the bot
        is unknown or offline. Nothing (an empty list) while the bot is quarantined
        (`rules.claims_withheld`): by the operator until a `release`, or by its own
        last reported lifecycle QUARANTINED.
        """
        ...

    async def report(self, bot_id: str, reports: Sequence[ReportInput]) -> list[ReportOutcome]:
        """Apply completions and failures in one transaction (PROTOCOL.md rules).

        complete: accepted from any attempt this bot held while the job is not
        terminal (first result wins); the same report again is accepted with no
        effect; a different attempt's report on a terminal job is CONFLICT.
        fail: only from the current lease holder (same bot, same attempt, state
        running), else CONFLICT (a repeat of an applied fail is ACCEPTED). With attempts left
        and retryable, the job is queued again at now + retry_after_ms or the retry
        policy's delay; otherwise it fails for good with the error.
        FORBIDDEN when the job was never handed to this bot; NOT_FOUND for an unknown id.
        `attempt` None means the latest attempt this bot held.
        """
        ...

    async def report_and_claim(
        self,
        bot_id: str,
        reports: Sequence[ReportInput],
        operations: Sequence[str],
        limit: int,
        lease_ttl_s: float,
    ) -> tuple[list[ReportOutcome], list[JobRecord] | None]:
        """`report`, then `claim_jobs`, in ONE transaction: the claim fills the capacity
        the reports freed. Same answers as the two verbs one after the other (the
        reports stand even when the claim answers None), one commit instead of two."""
        ...

    async def set_progress(
        self, bot_id: str, job_id: str, attempt: int | None, progress: float, message: str | None
    ) -> ReportOutcome: ...

    async def get_job(self, job_id: str) -> JobRecord | None: ...

    async def list_jobs(
        self, state: str | None, op: str | None, limit: int, cursor: str | None
    ) -> tuple[list[JobRecord], str | None]:
        """Newest first; the cursor is opaque and stable under inserts. ValueError if malformed."""
        ...

    async def list_attempts(self, job_id: str) -> list[AttemptRecord]: ...

    async def cancel_job(self, job_id: str) -> tuple[ReportOutcome, JobRecord | None]:
        """Queued or running -> cancelled (a running job's bot is told by heartbeat).

        CONFLICT when already terminal (the job is returned unchanged)."""
        ...

    async def retry_job(self, job_id: str) -> tuple[ReportOutcome, JobRecord | None]:
        """Failed or cancelled -> queued now, with max_attempts fresh attempts
        (attempt numbers keep rising). CONFLICT from any other state."""
        ...

    async def stats(self, window_s: int = 60) -> StatsRecord: ...

    async def next_run_at(self, operations: Sequence[str]) -> datetime | None:
        """Earliest run_at of a queued job for these operations (long-poll wake-up)."""
        ...

    async def claim_outlook(self, bot_id: str, operations: Sequence[str]) -> ClaimOutlook:
        """In one read (one snapshot): is the bot known and online, and `next_run_at`.

        Lets a claim that probably finds nothing skip its write transaction: the
        answer is the one `claim_jobs` would give when no job is due (an empty list,
        or None for an unknown or offline bot)."""
        ...

    # ---- reaper
    async def expire_leases(self) -> ExpiryOutcome:
        """Bots past lease_until go offline and their jobs are released; jobs past
        their lease are queued again (new attempt) or, with max_attempts spent,
        failed with the error "lease expired". Safe to run in every process at once."""
        ...
