"""The store interface: every verb the coordinator needs, and nothing about SQL.

Correctness lives in the database. Each verb is one transaction, so several
coordinator processes sharing one database (PostgreSQL) stay correct: a job is
never held under two live leases, a report is applied at most once, the
reaper may run in every process at once.

Time comes from the injected clock; retry delays from the injected policy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from coordinator.store.api_tokens import ApiTokenRecord, NewApiToken
from coordinator.store.joblogs import LogAppend, LogAppendOutcome, LogPage, LogQuery
from coordinator.store.limits import LimitRecord, LimitSpec
from coordinator.store.records import (
    AssignmentRecord,
    AttemptRecord,
    BotRecord,
    BotRoute,
    BotUpdate,
    ClaimInput,
    ClaimOutlook,
    ExpiryOutcome,
    ForgetOutcome,
    HandedBack,
    HeartbeatInput,
    HeartbeatOutcome,
    JobQuery,
    JobRecord,
    NewJob,
    ProgressInput,
    RegisterOutcome,
    Registration,
    ReportInput,
    ReportOutcome,
    RevokeOutcome,
    StatsRecord,
    SubmitOutcome,
)
from coordinator.store.releases import ReleaseInput, ReleaseOutcome
from coordinator.store.retention import Retention, SweepOutcome
from coordinator.store.schedules import FiredSchedule, JobMaker, ScheduleRecord, ScheduleSpec

__all__ = [
    "ApiTokenRecord",
    "AssignmentRecord",
    "AttemptRecord",
    "BotRecord",
    "BotRevoked",
    "BotRoute",
    "BotUpdate",
    "ClaimInput",
    "ClaimOutlook",
    "ExpiryOutcome",
    "ForgetOutcome",
    "HandedBack",
    "HeartbeatInput",
    "HeartbeatOutcome",
    "JobQuery",
    "JobRecord",
    "NewApiToken",
    "NewJob",
    "ProgressInput",
    "RegisterOutcome",
    "Registration",
    "ReleaseInput",
    "ReleaseOutcome",
    "ReportInput",
    "ReportOutcome",
    "Retention",
    "RetryDelay",
    "RevokeOutcome",
    "StatsRecord",
    "Store",
    "StoreError",
    "StoreFull",
    "StoreListener",
    "SubmitOutcome",
    "SweepOutcome",
]


class StoreError(Exception):
    """The store failed (unreachable, corrupt); not the client's fault."""


class StoreFull(StoreError):
    """The database has no room for the write (disk full, or a size limit): nothing of
    it was written."""


class BotRevoked(Exception):
    """A revoked bot's bot_key tried to register: nothing was written."""

    def __init__(self, bot_id: str) -> None:
        super().__init__(f"bot {bot_id} is revoked")
        self.bot_id = bot_id


class StoreListener(Protocol):
    """Told when a waiting claim or `GET /v1/jobs/{id}?wait_ms` may have an answer.

    A store calls it for changes made by any process sharing the database
    (PostgreSQL: LISTEN/NOTIFY) or at least by this process (SQLite).
    """

    def jobs_available(self, operations: Sequence[str], count: int | None = None) -> None:
        """`count` jobs for these operations became claimable; None: an unknown number
        (the listener then wakes every waiting claim for them)."""
        ...

    def jobs_finished(self, job_ids: Sequence[str]) -> None:
        """These jobs reached a final state (all of one commit's at once)."""
        ...


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

    async def housekeeping_warnings(self, policy: Retention) -> list[str]:
        """What keeps `policy` from freeing space on this database, for the operator
        to hear at start-up (none when nothing does)."""
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
        A revoked bot's bot_key raises `BotRevoked`.
        """
        ...

    async def get_bot(self, bot_id: str) -> BotRecord | None: ...

    async def list_bots(self) -> list[BotRecord]: ...

    async def online_bot_routes(self) -> list[BotRoute]:
        """The operations and labels of every online bot (why a queued job waits)."""
        ...

    async def heartbeat(self, beat: HeartbeatInput) -> HeartbeatOutcome | None:
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

    async def update_bot(self, bot_id: str, update: BotUpdate) -> BotRecord | None:
        """ValueError for a command or an assignment no bot could follow."""
        ...

    async def deregister_bot(self, bot_id: str, instance_id: str) -> tuple[str, ...] | None:
        """Mark offline at once and release the jobs it still holds (as above); None if unknown."""
        ...

    async def revoke_bot(self, bot_id: str) -> RevokeOutcome | None:
        """An operator cuts the bot off; None if unknown. At once and for every process:
        the bot goes offline (its heartbeats and claims find no online bot), its reports
        are refused as CONFLICT, and its bot_key raises `BotRevoked` at registration.
        The jobs it holds go back to the queue uncharged (attempt_base goes up with the
        attempt, as for a lost claim); their attempts end as `revoked`. Revoking a
        revoked bot changes nothing (its `revoked_at` stays the first)."""
        ...

    async def allow_bot(self, bot_id: str) -> BotRecord | None:
        """Lift a revocation: the bot_key may register again (a new token; the token it
        had before stays dead). None if unknown."""
        ...

    async def forget_bot(self, bot_id: str) -> ForgetOutcome:
        """Delete an offline bot that holds no running job and is not revoked; its id
        stays on its jobs and their attempts."""
        ...

    # ---- jobs
    async def submit_jobs(self, jobs: Sequence[NewJob]) -> list[SubmitOutcome]:
        """Insert in one transaction; an idempotency_key seen before returns that job.

        A job's `after` (ids, or "#N" for the N-th job of this call, checked by the
        caller) makes it wait (`store.dependencies`); `UnknownDependency` for an id
        that names no job, and then nothing is written."""
        ...

    async def claim_jobs(self, claim: ClaimInput) -> list[JobRecord] | None:
        """Atomically hand out up to `limit` queued jobs whose run_at has come.

        Priority (higher first), then FIFO. Only operations in both `operations` and
        the bot's assignment; nothing while paused; never more than
        assignment.max_concurrency running for this bot. Each job's attempt goes up by
        one and its lease is max(lease_ttl_s, timeout_s) from now. None when the bot
        is unknown or offline. Nothing (an empty list) while the bot is quarantined
        (`rules.claims_withheld`): by the operator until a `release`, or by its own
        last reported lifecycle QUARANTINED. A repeat of a `claim_id` that handed out
        jobs gets `HandedBack`: those still running under the bot, nothing new.
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
        self, claim: ClaimInput, reports: Sequence[ReportInput]
    ) -> tuple[list[ReportOutcome], list[JobRecord] | None]:
        """`report`, then `claim_jobs`, in ONE transaction: the claim fills the capacity
        the reports freed. Same answers as the two verbs one after the other (the
        reports stand even when the claim answers None), one commit instead of two."""
        ...

    async def set_progress(self, bot_id: str, progress: ProgressInput) -> ReportOutcome:
        """Accepted only from the current lease holder, like a fail."""
        ...

    async def release_jobs(
        self, bot_id: str, items: Sequence[ReleaseInput]
    ) -> list[ReleaseOutcome]:
        """Give back jobs a bot claimed and never started (prefetch), in one transaction
        (`releases.decide_releases`): only from the holder of that attempt (else
        CONFLICT); the job is queued again at once in its place, uncharged (attempt_base
        goes up with the attempt), and its attempt ends as `unstarted`, left out of
        `list_attempts`. A repeat is RELEASED again with no effect. Waiting claims
        for the jobs' operations are told, as for any job queued again."""
        ...

    async def get_job(self, job_id: str) -> JobRecord | None: ...

    async def list_jobs(self, query: JobQuery) -> tuple[list[JobRecord], str | None]:
        """Newest first; the cursor is opaque and stable under inserts. ValueError if malformed."""
        ...

    async def list_attempts(self, job_id: str) -> list[AttemptRecord]: ...

    async def pending_dependencies(self, job_id: str) -> list[tuple[str, str]]:
        """(id, state) of the jobs a queued job still waits for (submit's `after`)."""
        ...

    async def cancel_job(self, job_id: str) -> tuple[ReportOutcome, JobRecord | None]:
        """Queued or running -> cancelled (a running job's bot is told by heartbeat).

        CONFLICT when already terminal (the job is returned unchanged)."""
        ...

    async def put_limit(self, spec: LimitSpec) -> None:
        """Create or change the limit `spec.name`."""
        ...

    async def delete_limit(self, name: str) -> bool:
        """Remove a limit; False when there was none. Jobs naming it run unlimited by it."""
        ...

    async def list_limits(self) -> list[LimitRecord]:
        """Every limit, with the jobs running under it, its bucket's level and its start
        rate now."""
        ...

    async def seconds_until_tokens(self, operations: Sequence[str]) -> float | None:
        """Seconds until a rate limit that alone holds back claimable jobs of these
        operations has a whole token again (a waiting claim then looks again); None
        when no rate limit holds any back."""
        ...

    async def queued_by_limit(self) -> dict[str, int]:
        """Jobs ready to run (due, no dependency left) under each limit, by its name."""
        ...

    async def limit_names(self) -> set[str]:
        """The names of the limits that exist (submit checks a job's limits against them)."""
        ...

    async def retry_job(self, job_id: str) -> tuple[ReportOutcome, JobRecord | None]:
        """Failed or cancelled -> queued now, with max_attempts fresh attempts
        (attempt numbers keep rising). CONFLICT from any other state."""
        ...

    async def stats(self, window_s: int = 60) -> StatsRecord: ...

    async def next_run_at(
        self, operations: Sequence[str], bot_id: str | None = None
    ) -> datetime | None:
        """Earliest run_at of a queued job for these operations (long-poll wake-up);
        with `bot_id`, only among the jobs that bot's labels let it take."""
        ...

    async def claim_outlook(
        self, bot_id: str, operations: Sequence[str], claim_id: str | None = None
    ) -> ClaimOutlook:
        """In one read (one snapshot): is the bot known and online, `next_run_at` (for
        this bot, as with `bot_id`), and
        whether `claim_id` has jobs running under the bot.

        Lets a claim that probably finds nothing skip its write transaction: the
        answer is the one `claim_jobs` would give when no job is due and the claim is
        no repeat (an empty list, or None for an unknown or offline bot)."""
        ...

    # ---- role tokens
    async def create_api_token(self, token: NewApiToken) -> ApiTokenRecord | None:
        """None when a live token already has this name (the name is free again once
        that one is revoked)."""
        ...

    async def api_token_by_hash(self, token_hash: str) -> ApiTokenRecord | None:
        """The token, revoked or expired ones included (the caller says which)."""
        ...

    async def list_api_tokens(self) -> list[ApiTokenRecord]:
        """The tokens not revoked, oldest first."""
        ...

    async def revoke_api_token(self, token_id: str) -> ApiTokenRecord | None:
        """Revoked from now on; None when unknown or revoked already."""
        ...

    async def touch_api_token(self, token_id: str, stale_before: datetime) -> None:
        """last_used_at = now, only when it is older than `stale_before` (or unset)."""
        ...

    # ---- job logs
    async def append_logs(self, batches: Sequence[LogAppend]) -> list[LogAppendOutcome]:
        """In one transaction, for each batch: keep a bot's lines of one attempt, in
        order, numbered after the job's last line, while the job's log stays within
        `max_bytes` (`joblogs.fit`).
        Only from the bot that attempt was handed to (else CONFLICT), whether or not the
        attempt has ended: a bot sends its last lines after its report. NOT_FOUND for
        an unknown job."""
        ...

    async def read_logs(self, query: LogQuery) -> LogPage | None:
        """Lines after `query.after`, in order; None for an unknown job."""
        ...

    # ---- schedules
    async def put_schedule(self, spec: ScheduleSpec) -> tuple[ScheduleRecord, bool]:
        """Create or replace (True: created). A running schedule put again with the same
        timing keeps its next due time; otherwise it is counted from now. Paused: no
        next due time until resumed (times passed while paused make no job)."""
        ...

    async def list_schedules(self) -> list[ScheduleRecord]:
        """By name."""
        ...

    async def delete_schedule(self, name: str) -> bool:
        """False when there was no such schedule. Jobs it made stay."""
        ...

    async def fire_schedules(self, make_job: JobMaker, limit: int) -> list[FiredSchedule]:
        """In one transaction, for up to `limit` schedules whose next due time has come:
        move it past now (`schedules.due_after`) and insert the job `make_job` makes for
        that due time. Each due time fires once, with every process firing at once;
        the due times missed meanwhile make no job of their own."""
        ...

    async def next_schedule_due(self) -> datetime | None:
        """The earliest next due time of any running schedule (the firer's wake-up)."""
        ...

    # ---- reaper
    async def expire_leases(self) -> ExpiryOutcome:
        """Bots past lease_until go offline and their jobs are released; jobs past
        their lease are queued again (new attempt) or, with max_attempts spent,
        failed with the error "lease expired". Safe to run in every process at once."""
        ...

    async def sweep(self, policy: Retention) -> SweepOutcome:
        """One batch of housekeeping in one transaction, at most `policy.batch_size` rows
        of each kind: queued jobs past their expires_at end `cancelled` with the error
        "expired"; jobs finished before the retention are deleted with their attempts;
        offline bots silent for longer than theirs are forgotten (jobs keep their ids).
        Safe in every process at once; the caller repeats while `more`."""
        ...
