"""The PostgreSQL store: several coordinator processes share one database.

Every verb is one transaction, and correctness lives in SQL (sql/postgres_queries.sql):
claims pick jobs with `FOR UPDATE SKIP LOCKED` and move them in the same statement;
every UPDATE that moves a job re-checks its state, attempt and holder (the fence), so
a stale coordinator or bot can never act on a lease it lost; the reaper locks with
SKIP LOCKED and re-checked conditions, so it may run in every process at once without
requeueing anything twice. Commits that make jobs claimable or finish jobs NOTIFY the
other coordinators (postgres_notify.py).

Time: every timestamp (claimed_at, lease_until, finished_at, …) comes from the
injected clock and is passed to SQL as a parameter; no statement calls now(). Tests
drive leases with a FakeClock; in production, coordinators sharing a database must
share one time source (NTP-synchronised hosts), since one process's lease deadline is
compared with another's clock. Lease TTLs (minutes) dwarf NTP skew (milliseconds).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeVar, overload

import asyncpg

from botfleet.clock import Clock
from coordinator.store import postgres_schema
from coordinator.store.base import (
    AttemptRecord,
    BotRecord,
    ExpiryOutcome,
    HeartbeatOutcome,
    JobRecord,
    NewJob,
    RegisterOutcome,
    Registration,
    ReportInput,
    ReportOutcome,
    RetryDelay,
    StatsRecord,
    StoreError,
    StoreListener,
    SubmitOutcome,
)
from coordinator.store.postgres_notify import Notice, NotificationRelay, encode_notices
from coordinator.store.postgres_reports import LockedJob, ReportBatch
from coordinator.store.postgres_rows import (
    attempt_from_row,
    bot_from_row,
    init_connection,
    job_from_row,
)
from coordinator.store.queries import load_queries
from coordinator.store.rules import JobSnapshot, command_took_effect

log = logging.getLogger(__name__)

T = TypeVar("T")
Connection = Any  # asyncpg ships no type information

_JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
# Transient failures of a transaction that are safe to retry from the start.
_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
_DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
_TRANSACTION_TRIES = 5
_CONNECT_TIMEOUT_S = 10.0  # an unreachable server fails /readyz in seconds, not a minute
_COMMANDS = frozenset({"drain", "quarantine", "release"})
# Errors of jobs failed for good because their holder went away (as the SQLite store).
INSTANCE_REPLACED = "bot instance replaced"
BOT_DEREGISTERED = "bot deregistered"
BOT_LEASE_EXPIRED = "bot lease expired"


class _Changes:
    """What a transaction did that other processes' waiters must hear about."""

    def __init__(self) -> None:
        self.ops: list[str] = []
        self.done: list[str] = []
        self.notified = False  # the work sent the notices itself (in its last statement)

    def moved(self, rows: Sequence[Any]) -> None:
        """Jobs released or expired: queued again (claimable) or failed (finished)."""
        for row in rows:
            if row["state"] == "queued":
                self.ops.append(row["op"])
            else:
                self.done.append(row["id"])

    def __bool__(self) -> bool:
        return bool(self.ops or self.done)


class PostgresStore:
    def __init__(
        self,
        dsn: str,
        clock: Clock,
        retry_delay: RetryDelay,
        schema: str = "public",
        pool_min: int = 1,
        pool_max: int = 10,
    ) -> None:
        self._dsn = dsn
        self._clock = clock
        self._retry_delay = retry_delay
        self._schema = postgres_schema.validate_schema(schema)
        self._pool_min = pool_min
        self._pool_max = pool_max
        self._queries = load_queries("postgres_queries.sql")
        self._channel = f"botfleet_{self._schema}"
        # application_name of the listening connection, to find it in pg_stat_activity
        self.listener_name = f"botfleet-listener {self._schema}"[:63]
        self._origin = uuid.uuid4().hex
        self._pool: Any = None
        self._listener: StoreListener | None = None
        self._relay: NotificationRelay | None = None

    # ------------------------------------------------------------------ life

    async def open(self) -> None:
        if self._pool is not None:
            return
        try:
            pool = await asyncpg.create_pool(
                self._dsn,
                min_size=self._pool_min,
                max_size=self._pool_max,
                server_settings=self._server_settings(),
                init=init_connection,
                timeout=_CONNECT_TIMEOUT_S,
                reset=_keep_session,
            )
        except _DATABASE_ERRORS as error:
            raise StoreError(f"cannot connect to PostgreSQL: {error}") from error
        try:
            async with pool.acquire() as connection:
                applied = await postgres_schema.migrate(
                    connection, self._schema, self._queries, self._clock.now()
                )
        except (*_DATABASE_ERRORS, ValueError) as error:  # ValueError: a newer schema
            await pool.close()
            raise StoreError(f"cannot migrate schema {self._schema}: {error}") from error
        if applied:
            log.info("schema %s: applied migrations %s", self._schema, applied)
        self._pool = pool
        if self._listener is not None:
            await self._start_relay()

    async def close(self) -> None:
        relay, self._relay = self._relay, None
        if relay is not None:
            await relay.stop()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def ping(self) -> None:
        await self._read(lambda conn: conn.fetchval(self._queries["ping"]))

    def set_listener(self, listener: StoreListener) -> None:
        """Hear about changes from every coordinator; listening starts (again) if open."""
        self._listener = listener
        if self._pool is not None and self._relay is None:
            self._relay = self._make_relay()
            self._relay.start_soon()

    async def wait_listening(self) -> None:
        """Until the listening connection is up (tests, and orderly start-up)."""
        if self._relay is not None:
            await self._relay.wait_listening()

    # ------------------------------------------------------------------ bots

    async def register_bot(self, registration: Registration) -> RegisterOutcome:
        reg = replace(
            registration,
            bot_key=_text(registration.bot_key),
            instance_id=_text(registration.instance_id),
            name=_text(registration.name),
            version=_text(registration.version),
        )
        now = self._clock.now()
        max_concurrency = int(reg.constraints.get("max_concurrency") or reg.default_max_concurrency)
        capabilities = list(reg.capabilities)

        async def work(conn: Connection, changes: _Changes) -> RegisterOutcome:
            q = self._queries
            bot_id = await conn.fetchval(
                q["insert_bot"], f"bot_{uuid.uuid4().hex}", reg.bot_key, reg.instance_id,
                reg.name, reg.version, capabilities, max_concurrency, now, reg.token_hash,
                reg.token_expires_at, reg.lease_until, reg.resources, reg.constraints, reg.meta,
            )  # fmt: skip
            created = bot_id is not None
            released: list[Any] = []
            if not created:
                existing = await conn.fetchrow(q["lock_bot_by_key"], reg.bot_key)
                bot_id = existing["id"]
                if existing["instance_id"] != reg.instance_id:
                    released = await conn.fetch(
                        q["release_bot_jobs"], [bot_id], now, INSTANCE_REPLACED
                    )
                    changes.moved(released)
                await conn.execute(
                    q["reregister_bot"], bot_id, reg.instance_id, reg.name, reg.version,
                    capabilities, max_concurrency, reg.token_hash, reg.token_expires_at,
                    reg.lease_until, reg.resources, reg.constraints, reg.meta,
                )  # fmt: skip
            bot = bot_from_row(await conn.fetchrow(q["get_bot"], bot_id))
            return RegisterOutcome(bot, created, tuple(row["id"] for row in released))

        return await self._write(work)

    async def get_bot(self, bot_id: str) -> BotRecord | None:
        row = await self._read(lambda conn: conn.fetchrow(self._queries["get_bot"], bot_id))
        return None if row is None else bot_from_row(row)

    async def list_bots(self) -> list[BotRecord]:
        rows = await self._read(lambda conn: conn.fetch(self._queries["list_bots"]))
        return [bot_from_row(row) for row in rows]

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
        now = self._clock.now()
        lease_until = now + timedelta(seconds=bot_lease_ttl_s)

        async def work(conn: Connection, _changes: _Changes) -> HeartbeatOutcome | None:
            q = self._queries
            locked = await conn.fetchrow(q["lock_bot_for_heartbeat"], bot_id, _text(instance_id))
            if locked is None:
                return None
            effective_lifecycle = _text(lifecycle) if lifecycle is not None else locked["lifecycle"]
            command = locked["pending_command"]
            if command is not None and command_took_effect(command, effective_lifecycle):
                command = None
            row = await conn.fetchrow(
                q["heartbeat_bot"], bot_id, now, lease_until, effective_lifecycle, command,
                metrics,
            )  # fmt: skip
            extended: dict[str, datetime] = {}
            cancel: list[str] = []
            if running_job_ids:
                for job in await conn.fetch(
                    q["extend_leases"], list(dict.fromkeys(running_job_ids)), bot_id, now,
                    job_lease_ttl_s,
                ):  # fmt: skip
                    if job["cancelled"]:
                        cancel.append(job["id"])
                    else:
                        extended[job["id"]] = job["lease_until"]
            return HeartbeatOutcome(bot_from_row(row), extended, tuple(cancel), command)

        return await self._write(work)

    async def update_bot(
        self,
        bot_id: str,
        operations: Sequence[str] | None = None,
        max_concurrency: int | None = None,
        paused: bool | None = None,
        command: str | None = None,
    ) -> BotRecord | None:
        if command is not None and command not in _COMMANDS:
            raise ValueError(f"unknown bot command {command!r} (drain, quarantine or release)")
        if max_concurrency is not None and max_concurrency < 0:
            raise ValueError("max_concurrency must not be negative")

        async def work(conn: Connection, changes: _Changes) -> BotRecord | None:
            found = await conn.fetchval(
                self._queries["update_bot"], bot_id,
                None if operations is None else list(operations), max_concurrency, paused,
                command,
            )  # fmt: skip
            if found is None:
                return None
            bot = bot_from_row(await conn.fetchrow(self._queries["get_bot"], bot_id))
            if not bot.assignment.paused:
                # A new assignment or an unpause may let waiting claims through.
                changes.ops.extend(bot.assignment.operations)
            return bot

        return await self._write(work)

    async def deregister_bot(self, bot_id: str, instance_id: str) -> tuple[str, ...] | None:
        now = self._clock.now()

        async def work(conn: Connection, changes: _Changes) -> tuple[str, ...] | None:
            q = self._queries
            if await conn.fetchval(q["deregister_bot"], bot_id, _text(instance_id)) is None:
                return None
            released = await conn.fetch(q["release_bot_jobs"], [bot_id], now, BOT_DEREGISTERED)
            changes.moved(released)
            return tuple(row["id"] for row in released)

        return await self._write(work)

    # ------------------------------------------------------------------ jobs

    async def submit_jobs(self, jobs: Sequence[NewJob]) -> list[SubmitOutcome]:
        if not jobs:
            return []
        now = self._clock.now()
        ids = [f"job_{uuid.uuid4().hex}" for _ in jobs]
        jobs = [
            job
            if job.idempotency_key is None
            else replace(job, idempotency_key=_text(job.idempotency_key))
            for job in jobs
        ]

        async def work(conn: Connection, changes: _Changes) -> list[SubmitOutcome]:
            q = self._queries
            inserted = await conn.fetch(
                q["insert_jobs"], now, ids, [job.op for job in jobs],
                [job.payload for job in jobs], [job.priority for job in jobs],
                [job.max_attempts for job in jobs], [job.run_at for job in jobs],
                [job.timeout_s for job in jobs], [job.idempotency_key for job in jobs],
                [job.metadata for job in jobs],
            )  # fmt: skip
            by_id = {row["id"]: job_from_row(row) for row in inserted}
            missing_keys = [
                job.idempotency_key
                for job, job_id in zip(jobs, ids, strict=True)
                if job_id not in by_id and job.idempotency_key is not None
            ]
            by_key = {}
            if missing_keys:
                rows = await conn.fetch(q["jobs_by_idempotency_key"], missing_keys)
                by_key = {row["idempotency_key"]: job_from_row(row) for row in rows}
            outcomes = []
            for job, job_id in zip(jobs, ids, strict=True):
                if job_id in by_id:
                    outcomes.append(SubmitOutcome(by_id[job_id], created=True))
                elif job.idempotency_key in by_key:
                    outcomes.append(SubmitOutcome(by_key[job.idempotency_key], created=False))
                else:
                    raise StoreError(f"job {job_id} was neither inserted nor found by key")
            changes.ops.extend(record.op for record in by_id.values())
            return outcomes

        return await self._write(work)

    async def claim_jobs(
        self, bot_id: str, operations: Sequence[str], limit: int, lease_ttl_s: float
    ) -> list[JobRecord] | None:
        now = self._clock.now()

        async def work(conn: Connection, _changes: _Changes) -> list[JobRecord] | None:
            q = self._queries
            bot = await conn.fetchrow(q["lock_bot_for_claim"], bot_id)
            if bot is None:
                return None
            assigned = set(bot["operations"])
            wanted = [op for op in dict.fromkeys(operations) if op in assigned]
            if bot["paused"] or not wanted or limit <= 0:
                return []
            rows = await conn.fetch(
                q["claim_jobs"], bot_id, wanted, limit, bot["max_concurrency"], now, lease_ttl_s
            )
            return [job_from_row(row) for row in rows]

        return await self._write(work)

    async def report(self, bot_id: str, reports: Sequence[ReportInput]) -> list[ReportOutcome]:
        if not reports:
            return []
        now = self._clock.now()
        job_ids = sorted({report.job_id for report in reports})
        reports = [replace(report, error=_text(report.error)) for report in reports]

        async def work(conn: Connection, changes: _Changes) -> list[ReportOutcome]:
            q = self._queries
            locked = {
                row["id"]: LockedJob(row["id"], row["op"], _snapshot(row))
                for row in await conn.fetch(q["lock_jobs_for_report"], job_ids)
            }
            batch = ReportBatch(bot_id, now, self._retry_delay, locked)
            for row in await conn.fetch(q["attempts_for_report"], list(locked), bot_id):
                batch.add_attempt(
                    row["job_id"], row["attempt"], row["bot_id"], row["outcome"],
                    live=row["ended_at"] is None,
                )  # fmt: skip
            outcomes = batch.apply_all(reports)
            await self._write_reports(conn, batch, changes)
            return outcomes

        return await self._write(work)

    async def _write_reports(self, conn: Connection, batch: ReportBatch, changes: _Changes) -> None:
        if not batch.changes and not batch.ended:
            return
        ids = list(batch.changes)
        rows = [batch.changes[job_id] for job_id in ids]
        fences = [batch.jobs[job_id] for job_id in ids]
        ended = list(batch.ended)
        changes.ops.extend(batch.requeued_ops)
        changes.done.extend(batch.finished)
        payloads = encode_notices(self._origin, changes.ops, changes.done)
        changes.notified = True
        moved = await conn.fetchval(
            self._queries["write_reports"], ids, [c.state for c in rows],
            [c.run_at for c in rows], [c.finished_at for c in rows],
            [c.result for c in rows], [c.result_attempt for c in rows],
            [c.error for c in rows], [f.read_state for f in fences],
            [f.read_attempt for f in fences], batch.now, [job_id for job_id, _ in ended],
            [attempt for _, attempt in ended], [batch.ended[key] for key in ended],
            self._channel, payloads,
        )  # fmt: skip
        if moved != len(ids):  # the rows are locked: the fence cannot fail, unless a bug
            raise StoreError(f"reports moved {moved} of {len(ids)} locked jobs")

    async def set_progress(
        self, bot_id: str, job_id: str, attempt: int | None, progress: float, message: str | None
    ) -> ReportOutcome:
        async def work(conn: Connection) -> ReportOutcome:
            q = self._queries
            if await conn.fetchval(
                q["set_progress"], job_id, bot_id, attempt, progress, _text(message)
            ):
                return ReportOutcome.ACCEPTED
            found = await conn.fetchrow(q["job_handed_to_bot"], job_id, bot_id)
            if not found["found"]:
                return ReportOutcome.NOT_FOUND
            return ReportOutcome.CONFLICT if found["handed"] else ReportOutcome.FORBIDDEN

        return await self._read(work)

    async def get_job(self, job_id: str) -> JobRecord | None:
        row = await self._read(lambda conn: conn.fetchrow(self._queries["get_job"], job_id))
        return None if row is None else job_from_row(row)

    async def list_jobs(
        self, state: str | None, op: str | None, limit: int, cursor: str | None
    ) -> tuple[list[JobRecord], str | None]:
        before = _parse_cursor(cursor)
        rows = await self._read(
            lambda conn: conn.fetch(self._queries["list_jobs"], state, op, before, limit + 1)
        )
        jobs = [job_from_row(row) for row in rows[:limit]]
        next_cursor = str(rows[limit - 1]["seq"]) if len(rows) > limit and limit > 0 else None
        return jobs, next_cursor

    async def list_attempts(self, job_id: str) -> list[AttemptRecord]:
        rows = await self._read(lambda conn: conn.fetch(self._queries["list_attempts"], job_id))
        return [attempt_from_row(row) for row in rows]

    async def cancel_job(self, job_id: str) -> tuple[ReportOutcome, JobRecord | None]:
        now = self._clock.now()

        async def work(
            conn: Connection, changes: _Changes
        ) -> tuple[ReportOutcome, JobRecord | None]:
            row = await conn.fetchrow(self._queries["cancel_job"], job_id, now)
            if row is not None:
                changes.done.append(job_id)
                return ReportOutcome.ACCEPTED, job_from_row(row)
            return await self._unchanged(conn, job_id)

        return await self._write(work)

    async def retry_job(self, job_id: str) -> tuple[ReportOutcome, JobRecord | None]:
        now = self._clock.now()

        async def work(
            conn: Connection, changes: _Changes
        ) -> tuple[ReportOutcome, JobRecord | None]:
            row = await conn.fetchrow(self._queries["retry_job"], job_id, now)
            if row is not None:
                changes.ops.append(row["op"])
                return ReportOutcome.ACCEPTED, job_from_row(row)
            return await self._unchanged(conn, job_id)

        return await self._write(work)

    async def _unchanged(
        self, conn: Connection, job_id: str
    ) -> tuple[ReportOutcome, JobRecord | None]:
        row = await conn.fetchrow(self._queries["get_job"], job_id)
        if row is None:
            return ReportOutcome.NOT_FOUND, None
        return ReportOutcome.CONFLICT, job_from_row(row)

    async def stats(self, window_s: int = 60) -> StatsRecord:
        since = self._clock.now() - timedelta(seconds=window_s)

        async def work(conn: Connection) -> StatsRecord:
            q = self._queries
            jobs_by_state = dict.fromkeys(_JOB_STATES, 0)
            jobs_by_op: dict[str, dict[str, int]] = {}
            for row in await conn.fetch(q["count_jobs"]):
                jobs_by_state[row["state"]] = jobs_by_state.get(row["state"], 0) + row["n"]
                jobs_by_op.setdefault(row["op"], {})[row["state"]] = row["n"]
            bots_by_state = {"online": 0, "offline": 0}
            for row in await conn.fetch(q["count_bots"]):
                bots_by_state["online" if row["online"] else "offline"] = row["n"]
            finished = await conn.fetchrow(q["finished_since"], since)
            return StatsRecord(
                jobs_by_state=jobs_by_state,
                jobs_by_op=jobs_by_op,
                bots_by_state=bots_by_state,
                succeeded_last_window=finished["succeeded"],
                failed_last_window=finished["failed"],
                window_s=window_s,
                oldest_queued_at=await conn.fetchval(q["oldest_queued"]),
            )

        return await self._read(work)

    async def next_run_at(self, operations: Sequence[str]) -> datetime | None:
        value = await self._read(
            lambda conn: conn.fetchval(self._queries["next_run_at"], list(operations))
        )
        return None if value is None else _as_datetime(value)

    # ------------------------------------------------------------------ reaper

    async def expire_leases(self) -> ExpiryOutcome:
        now = self._clock.now()

        async def work(conn: Connection, changes: _Changes) -> ExpiryOutcome:
            q = self._queries
            offline = [row["id"] for row in await conn.fetch(q["expire_bots"], now)]
            released = []
            if offline:
                released = await conn.fetch(q["release_bot_jobs"], offline, now, BOT_LEASE_EXPIRED)
            expired = await conn.fetch(q["expire_jobs"], now)
            moved = [*released, *expired]
            changes.moved(moved)
            return ExpiryOutcome(
                bots_offline=tuple(offline),
                requeued=tuple(row["id"] for row in moved if row["state"] == "queued"),
                failed=tuple(row["id"] for row in moved if row["state"] == "failed"),
            )

        return await self._write(work)

    # ------------------------------------------------------------------ plumbing

    def _server_settings(self) -> dict[str, str]:
        return {"search_path": self._schema, "application_name": "botfleet-coordinator"}

    async def _read(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        """Run `work` on a pooled connection, outside a transaction (reads, lone statements)."""
        return await self._run(work, transaction=False)

    async def _write(self, work: Callable[[Connection, _Changes], Awaitable[T]]) -> T:
        """Run `work` in one transaction; on commit, tell every coordinator what changed."""

        async def in_transaction(conn: Connection) -> tuple[T, _Changes]:
            changes = _Changes()
            result = await work(conn, changes)
            if not changes.notified:
                for payload in encode_notices(self._origin, changes.ops, changes.done):
                    # Queued in the transaction: PostgreSQL delivers it at commit, or never.
                    await conn.execute(self._queries["notify"], self._channel, payload)
            return result, changes

        result, changes = await self._run(in_transaction, transaction=True)
        if changes:
            self._tell_listener(Notice(self._origin, tuple(changes.ops), tuple(changes.done)))
        return result

    async def _run(self, work: Callable[[Connection], Awaitable[T]], transaction: bool) -> T:
        """Database errors become StoreError; deadlocks and serialization failures retry."""
        if self._pool is None:
            raise StoreError("the PostgreSQL store is not open")
        tries = 0
        while True:
            tries += 1
            try:
                async with self._pool.acquire() as conn:
                    if not transaction:
                        return await work(conn)
                    async with conn.transaction():
                        return await work(conn)
            except _RETRYABLE as error:
                if tries >= _TRANSACTION_TRIES:
                    raise StoreError(f"PostgreSQL: gave up after {tries} tries: {error}") from error
                log.info("retrying a transaction (try %d): %s", tries + 1, error)
            except _DATABASE_ERRORS as error:
                raise StoreError(f"PostgreSQL: {error}") from error

    # ------------------------------------------------------------------ notifications

    async def _start_relay(self) -> None:
        self._relay = self._make_relay()
        try:
            await self._relay.start()
        except _DATABASE_ERRORS as error:
            log.warning(
                "cannot listen on %s yet (%s); retrying in the background", self._channel, error
            )
            self._relay.start_soon()

    def _make_relay(self) -> NotificationRelay:
        return NotificationRelay(
            connect=lambda: asyncpg.connect(
                self._dsn,
                timeout=_CONNECT_TIMEOUT_S,
                server_settings={**self._server_settings(), "application_name": self.listener_name},
            ),
            channel=self._channel,
            on_notice=self._on_remote_notice,
            on_reconnect=self._wake_all,
        )

    def _on_remote_notice(self, notice: Notice) -> None:
        if notice.origin != self._origin:  # our own changes were told at commit
            self._tell_listener(notice)

    async def _wake_all(self) -> None:
        rows = await self._read(lambda conn: conn.fetch(self._queries["queued_operations"]))
        self._tell_listener(Notice(self._origin, tuple(row["op"] for row in rows)))

    def _tell_listener(self, notice: Notice) -> None:
        listener = self._listener
        if listener is None:
            return
        if notice.ops:
            listener.jobs_available(notice.ops)
        for job_id in notice.done:
            listener.job_finished(job_id)


def _parse_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isdigit() or len(cursor) > 18:
        raise ValueError(f"cursor: {cursor!r} is not a cursor this server gave out")
    return int(cursor)


def _as_datetime(value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise StoreError(f"expected a timestamp, got {value!r}")
    return value


def _max_concurrency(registration: Registration) -> int:
    wanted = registration.constraints.get("max_concurrency")
    if isinstance(wanted, int) and not isinstance(wanted, bool) and wanted >= 1:
        return wanted
    return registration.default_max_concurrency


def _snapshot(row: Any) -> JobSnapshot:
    return JobSnapshot(
        state=row["state"],
        attempt=row["attempt"],
        bot_id=row["bot_id"],
        attempt_base=row["attempt_base"],
        max_attempts=row["max_attempts"],
        result_attempt=row["result_attempt"],
    )


async def _keep_session(_connection: Connection) -> None:
    """Skip asyncpg's reset query (a round trip per verb) when a connection goes back.

    The store leaves no session state behind: settings are `SET LOCAL`, advisory locks
    are transaction-scoped, LISTEN lives on its own connection, and asyncpg still rolls
    back a transaction left open.
    """


@overload
def _text(value: str) -> str: ...
@overload
def _text(value: None) -> None: ...
def _text(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL; a client's text may (an exception's message)."""
    return value.replace("\x00", "\ufffd") if value is not None and "\x00" in value else value
