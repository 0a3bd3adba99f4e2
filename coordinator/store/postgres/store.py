"""The PostgreSQL store: several coordinator processes share one database.

Every verb is one transaction, and correctness lives in SQL (sql/postgres_queries.sql):
claims pick jobs with `FOR UPDATE SKIP LOCKED` and move them in the same statement;
every UPDATE that moves a job re-checks its state, attempt and holder (the fence), so
a stale coordinator or bot can never act on a lease it lost; the reaper locks with
SKIP LOCKED and re-checked conditions, so it may run in every process at once without
requeueing anything twice. Commits that make jobs claimable or finish jobs NOTIFY the
other coordinators (notify.py).

Time: every timestamp (claimed_at, lease_until, finished_at, …) comes from the
injected clock and is passed to SQL as a parameter; no statement calls now(). Tests
drive leases with a FakeClock; in production, coordinators sharing a database must
share one time source (NTP-synchronised hosts), since one process's lease deadline is
compared with another's clock. Lease TTLs (minutes) dwarf NTP skew (milliseconds).
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import asyncpg

from botfleet.clock import Clock
from coordinator.store.base import (
    AttemptRecord,
    BotRecord,
    ClaimOutlook,
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
    StoreFull,
    StoreListener,
    SubmitOutcome,
)
from coordinator.store.postgres import bots
from coordinator.store.postgres import jobs as job_verbs
from coordinator.store.postgres import schema as postgres_schema
from coordinator.store.postgres.notify import Notice, NotificationRelay
from coordinator.store.postgres.rows import (
    attempt_from_row,
    bot_from_row,
    init_connection,
    job_from_row,
)
from coordinator.store.postgres.tx import Changes, Tx, clean_text
from coordinator.store.queries import load_queries

log = logging.getLogger(__name__)

T = TypeVar("T")
Connection = Any  # asyncpg ships no type information

_JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
# Transient failures of a transaction that are safe to retry from the start.
_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
_DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
_TRANSACTION_TRIES = 5
_CONNECT_TIMEOUT_S = 10.0  # an unreachable server fails /readyz in seconds, not a minute


class PostgresStore:
    """The `Store` on PostgreSQL (asyncpg pool); several may share one database and schema.

    The constructor does no I/O; `open()` connects, creates the schema if missing and
    applies pending migrations (under an advisory lock), and starts listening once a
    listener is set.
    """

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
        self._queries = _statements()
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
        return await self._write(lambda tx: bots.register_bot(tx, registration))

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
        return await self._write(
            lambda tx: bots.heartbeat(
                tx,
                bot_id,
                instance_id,
                running_job_ids,
                lifecycle,
                metrics,
                bot_lease_ttl_s,
                job_lease_ttl_s,
            )
        )

    async def update_bot(
        self,
        bot_id: str,
        operations: Sequence[str] | None = None,
        max_concurrency: int | None = None,
        paused: bool | None = None,
        command: str | None = None,
    ) -> BotRecord | None:
        bots.check_update(command, max_concurrency)
        return await self._write(
            lambda tx: bots.update_bot(tx, bot_id, operations, max_concurrency, paused, command)
        )

    async def deregister_bot(self, bot_id: str, instance_id: str) -> tuple[str, ...] | None:
        return await self._write(lambda tx: bots.deregister_bot(tx, bot_id, instance_id))

    # ------------------------------------------------------------------ jobs

    async def submit_jobs(self, jobs: Sequence[NewJob]) -> list[SubmitOutcome]:
        if not jobs:
            return []
        return await self._write(lambda tx: job_verbs.submit_jobs(tx, jobs))

    async def claim_jobs(
        self, bot_id: str, operations: Sequence[str], limit: int, lease_ttl_s: float
    ) -> list[JobRecord] | None:
        return await self._write(
            lambda tx: job_verbs.claim_jobs(tx, bot_id, operations, limit, lease_ttl_s)
        )

    async def report(self, bot_id: str, reports: Sequence[ReportInput]) -> list[ReportOutcome]:
        if not reports:
            return []
        return await self._write(lambda tx: job_verbs.report(tx, bot_id, reports))

    async def report_and_claim(
        self,
        bot_id: str,
        reports: Sequence[ReportInput],
        operations: Sequence[str],
        limit: int,
        lease_ttl_s: float,
    ) -> tuple[list[ReportOutcome], list[JobRecord] | None]:
        return await self._write(
            lambda tx: job_verbs.report_and_claim(
                tx, bot_id, reports, operations, limit, lease_ttl_s
            )
        )

    async def set_progress(
        self, bot_id: str, job_id: str, attempt: int | None, progress: float, message: str | None
    ) -> ReportOutcome:
        async def work(conn: Connection) -> ReportOutcome:
            q = self._queries
            text = clean_text(message)
            if await conn.fetchval(q["set_progress"], job_id, bot_id, attempt, progress, text):
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
        return await self._write(lambda tx: job_verbs.cancel_job(tx, job_id))

    async def retry_job(self, job_id: str) -> tuple[ReportOutcome, JobRecord | None]:
        return await self._write(lambda tx: job_verbs.retry_job(tx, job_id))

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

    async def claim_outlook(self, bot_id: str, operations: Sequence[str]) -> ClaimOutlook:
        row = await self._read(
            lambda conn: conn.fetchrow(self._queries["claim_outlook"], bot_id, list(operations))
        )
        run_at = row["next_run_at"]
        return ClaimOutlook(
            bot_online=bool(row["bot_online"]),
            next_run_at=None if run_at is None else _as_datetime(run_at),
        )

    # ------------------------------------------------------------------ reaper

    async def expire_leases(self) -> ExpiryOutcome:
        return await self._write(job_verbs.expire_leases)

    # ------------------------------------------------------------------ plumbing

    def _server_settings(self) -> dict[str, str]:
        return {"search_path": self._schema, "application_name": "botfleet-coordinator"}

    async def _read(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        """Run `work` on a pooled connection, outside a transaction (reads, lone statements)."""
        return await self._run(work, transaction=False)

    async def _write(self, work: Callable[[Tx], Awaitable[T]]) -> T:
        """Run `work` in one transaction; on commit, tell every coordinator what changed."""

        async def in_transaction(conn: Connection) -> tuple[T, Changes]:
            tx = Tx(conn, self._queries, self._clock.now(), self._retry_delay,
                    self._origin, self._channel)  # fmt: skip
            result = await work(tx)
            if not tx.changes.notified:
                for payload in tx.notices():
                    # Queued in the transaction: PostgreSQL delivers it at commit, or never.
                    await tx.execute("notify", self._channel, payload)
            return result, tx.changes

        result, changes = await self._run(in_transaction, transaction=True)
        if changes:
            ops = tuple(dict.fromkeys(changes.ops))
            self._tell_listener(Notice(self._origin, ops, tuple(changes.done), changes.count))
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
            except asyncpg.DiskFullError as error:
                raise StoreFull(f"PostgreSQL: {error}") from error
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
        """After the listening connection came back: notices may have been missed."""
        try:
            rows = await self._read(lambda conn: conn.fetch(self._queries["queued_operations"]))
        except StoreError as error:  # waiters still re-check on their own
            log.warning("could not look for queued jobs after reconnecting: %s", error)
            return
        self._tell_listener(Notice(self._origin, tuple(row["op"] for row in rows)))

    def _tell_listener(self, notice: Notice) -> None:
        listener = self._listener
        if listener is None:
            return
        if notice.ops:
            listener.jobs_available(notice.ops, notice.count)
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


async def _keep_session(_connection: Connection) -> None:
    """Skip asyncpg's reset query (a round trip per verb) when a connection goes back.

    The store leaves no session state behind: settings are `SET LOCAL`, advisory locks
    are transaction-scoped, LISTEN lives on its own connection, and asyncpg still rolls
    back a transaction left open.
    """


@functools.cache
def _statements() -> Mapping[str, str]:
    """The named statements, read once per process (a package resource, not config)."""
    return load_queries("postgres_queries.sql")
