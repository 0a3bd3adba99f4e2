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
from datetime import datetime
from typing import Any, TypeVar

import coordinator.store.postgres.bots as bots
import coordinator.store.postgres.dependencies as dependencies
import coordinator.store.postgres.joblogs as joblogs
import coordinator.store.postgres.jobs as jobs
import coordinator.store.postgres.leases as leases
import coordinator.store.postgres.limits as limits
import coordinator.store.postgres.reads as reads
import coordinator.store.postgres.releases as releases
import coordinator.store.postgres.reports as reports
import coordinator.store.postgres.retention as retention
import coordinator.store.postgres.revocation as revocation
import coordinator.store.postgres.schedules as schedules
import coordinator.store.postgres.schema as postgres_schema
import coordinator.store.postgres.tokens as tokens
import coordinator.store.records as records
from botfleet.clock import Clock
from coordinator.store.api_tokens import ApiTokenRecord, NewApiToken
from coordinator.store.base import RetryDelay, StoreError, StoreListener
from coordinator.store.changes import tell_listener
from coordinator.store.joblogs import LogAppend, LogAppendOutcome, LogPage, LogQuery
from coordinator.store.limits import LimitRecord, LimitSpec
from coordinator.store.postgres.connection import (
    DATABASE_ERRORS,
    Connection,
    connect,
    create_pool,
    run,
)
from coordinator.store.postgres.notify import Notice, NotificationRelay
from coordinator.store.postgres.tx import Tx
from coordinator.store.queries import load_queries
from coordinator.store.releases import ReleaseInput, ReleaseOutcome
from coordinator.store.retention import Retention, SweepOutcome
from coordinator.store.rows import check_limit, decode_cursor
from coordinator.store.rules import check_bot_update
from coordinator.store.schedules import FiredSchedule, JobMaker, ScheduleRecord, ScheduleSpec

log = logging.getLogger(__name__)

T = TypeVar("T")
Work = Callable[[Tx], Awaitable[T]]


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
        self._pool_size = (pool_min, pool_max)
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
        pool = await create_pool(self._dsn, *self._pool_size, self._server_settings())
        try:
            async with pool.acquire() as connection:
                applied = await postgres_schema.migrate(
                    connection, self._schema, self._queries, self._clock.now()
                )
        except (*DATABASE_ERRORS, ValueError) as error:  # ValueError: a newer schema
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
        await self._read(lambda tx: tx.fetchval("ping"))

    async def housekeeping_warnings(self, policy: Retention) -> list[str]:
        return await retention.vacuum_warnings(self.server_setting, policy)

    async def server_setting(self, name: str) -> str:
        value = await self._read(lambda tx: tx.fetchval("server_setting", name))
        return str(value)

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

    async def register_bot(self, registration: records.Registration) -> records.RegisterOutcome:
        return await self._write(lambda tx: bots.register_bot(tx, registration))

    async def get_bot(self, bot_id: str) -> records.BotRecord | None:
        return await self._read(lambda tx: reads.get_bot(tx, bot_id))

    async def list_bots(self) -> list[records.BotRecord]:
        return await self._read(reads.list_bots)

    async def online_bot_routes(self) -> list[records.BotRoute]:
        return await self._read(reads.online_bot_routes)

    async def heartbeat(self, beat: records.HeartbeatInput) -> records.HeartbeatOutcome | None:
        return await self._write(lambda tx: bots.heartbeat(tx, beat))

    async def update_bot(self, bot_id: str, update: records.BotUpdate) -> records.BotRecord | None:
        check_bot_update(update)
        return await self._write(lambda tx: bots.update_bot(tx, bot_id, update))

    async def deregister_bot(self, bot_id: str, instance_id: str) -> tuple[str, ...] | None:
        return await self._write(lambda tx: bots.deregister_bot(tx, bot_id, instance_id))

    async def revoke_bot(self, bot_id: str) -> records.RevokeOutcome | None:
        return await self._write(lambda tx: revocation.revoke_bot(tx, bot_id))

    async def allow_bot(self, bot_id: str) -> records.BotRecord | None:
        return await self._write(lambda tx: revocation.allow_bot(tx, bot_id))

    async def forget_bot(self, bot_id: str) -> records.ForgetOutcome:
        return await self._write(lambda tx: revocation.forget_bot(tx, bot_id))

    # ------------------------------------------------------------------ jobs

    async def submit_jobs(self, new: Sequence[records.NewJob]) -> list[records.SubmitOutcome]:
        if not new:
            return []
        return await self._write(lambda tx: jobs.submit_jobs(tx, new))

    async def claim_jobs(self, claim: records.ClaimInput) -> list[records.JobRecord] | None:
        return await self._write(lambda tx: jobs.claim_jobs(tx, claim))

    async def report(
        self, bot_id: str, batch: Sequence[records.ReportInput]
    ) -> list[records.ReportOutcome]:
        if not batch:
            return []
        return await self._write(lambda tx: reports.report(tx, bot_id, batch))

    async def report_and_claim(
        self, claim: records.ClaimInput, batch: Sequence[records.ReportInput]
    ) -> tuple[list[records.ReportOutcome], list[records.JobRecord] | None]:
        return await self._write(lambda tx: reports.report_and_claim(tx, claim, batch))

    async def set_progress(
        self, bot_id: str, progress: records.ProgressInput
    ) -> records.ReportOutcome:
        return await self._read(lambda tx: reports.set_progress(tx, bot_id, progress))

    async def release_jobs(
        self, bot_id: str, items: Sequence[ReleaseInput]
    ) -> list[ReleaseOutcome]:
        if not items:
            return []
        return await self._write(lambda tx: releases.release_jobs(tx, bot_id, items))

    async def get_job(self, job_id: str) -> records.JobRecord | None:
        return await self._read(lambda tx: reads.get_job(tx, job_id))

    async def list_jobs(
        self, query: records.JobQuery
    ) -> tuple[list[records.JobRecord], str | None]:
        check_limit(query.limit)
        decode_cursor(query.cursor)  # a malformed cursor fails before any I/O
        return await self._read(lambda tx: reads.list_jobs(tx, query))

    async def list_attempts(self, job_id: str) -> list[records.AttemptRecord]:
        return await self._read(lambda tx: reads.list_attempts(tx, job_id))

    async def pending_dependencies(self, job_id: str) -> list[tuple[str, str]]:
        return await self._read(lambda tx: dependencies.pending_dependencies(tx, job_id))

    async def cancel_job(
        self, job_id: str
    ) -> tuple[records.ReportOutcome, records.JobRecord | None]:
        return await self._write(lambda tx: jobs.cancel_job(tx, job_id))

    async def put_limit(self, spec: LimitSpec) -> None:
        await self._write(lambda tx: limits.put_limit(tx, spec))

    async def delete_limit(self, name: str) -> bool:
        return await self._write(lambda tx: limits.delete_limit(tx, name))

    async def list_limits(self) -> list[LimitRecord]:
        return await self._read(limits.list_limits)

    async def seconds_until_tokens(self, operations: Sequence[str]) -> float | None:
        return await self._read(lambda tx: limits.seconds_until_tokens(tx, operations))

    async def queued_by_limit(self) -> dict[str, int]:
        return await self._read(limits.queued_by_limit)

    async def limit_names(self) -> set[str]:
        return await self._read(limits.limit_names)

    async def retry_job(
        self, job_id: str
    ) -> tuple[records.ReportOutcome, records.JobRecord | None]:
        return await self._write(lambda tx: jobs.retry_job(tx, job_id))

    async def stats(self, window_s: int = 60) -> records.StatsRecord:
        return await self._read(lambda tx: reads.stats(tx, window_s))

    async def next_run_at(
        self, operations: Sequence[str], bot_id: str | None = None
    ) -> datetime | None:
        return await self._read(lambda tx: reads.next_run_at(tx, operations, bot_id))

    async def claim_outlook(
        self, bot_id: str, operations: Sequence[str], claim_id: str | None = None
    ) -> records.ClaimOutlook:
        return await self._read(lambda tx: reads.claim_outlook(tx, bot_id, operations, claim_id))

    # ------------------------------------------------------------------ role tokens

    async def create_api_token(self, token: NewApiToken) -> ApiTokenRecord | None:
        return await self._write(lambda tx: tokens.create_api_token(tx, token))

    async def api_token_by_hash(self, token_hash: str) -> ApiTokenRecord | None:
        return await self._read(lambda tx: reads.api_token_by_hash(tx, token_hash))

    async def list_api_tokens(self) -> list[ApiTokenRecord]:
        return await self._read(reads.list_api_tokens)

    async def revoke_api_token(self, token_id: str) -> ApiTokenRecord | None:
        return await self._write(lambda tx: tokens.revoke_api_token(tx, token_id))

    async def touch_api_token(self, token_id: str, stale_before: datetime) -> None:
        await self._write(lambda tx: tokens.touch_api_token(tx, token_id, stale_before))

    # ------------------------------------------------------------------ schedules

    async def put_schedule(self, spec: ScheduleSpec) -> tuple[ScheduleRecord, bool]:
        return await self._write(lambda tx: schedules.put_schedule(tx, spec))

    async def list_schedules(self) -> list[ScheduleRecord]:
        return await self._read(schedules.list_schedules)

    async def delete_schedule(self, name: str) -> bool:
        return await self._write(lambda tx: schedules.delete_schedule(tx, name))

    async def fire_schedules(self, make_job: JobMaker, limit: int) -> list[FiredSchedule]:
        return await self._write(lambda tx: schedules.fire_schedules(tx, make_job, limit))

    async def next_schedule_due(self) -> datetime | None:
        return await self._read(schedules.next_schedule_due)

    # ------------------------------------------------------------------ reaper

    async def expire_leases(self) -> records.ExpiryOutcome:
        return await self._write(leases.expire_leases)

    async def sweep(self, policy: Retention) -> SweepOutcome:
        return await self._write(lambda tx: retention.sweep(tx, policy))

    async def append_logs(self, batches: Sequence[LogAppend]) -> list[LogAppendOutcome]:
        return await self._write(lambda tx: joblogs.append_logs(tx, batches))

    async def read_logs(self, query: LogQuery) -> LogPage | None:
        return await self._read(lambda tx: joblogs.read_logs(tx, query))

    # ------------------------------------------------------------------ plumbing

    def _server_settings(self) -> dict[str, str]:
        return {"search_path": self._schema, "application_name": "botfleet-coordinator"}

    def _tx(self, conn: Connection) -> Tx:
        return Tx(conn, self._queries, self._clock.now(), self._retry_delay,
                  self._origin, self._channel)  # fmt: skip

    async def _read(self, work: Work[T]) -> T:
        """`work` on a pooled connection outside a transaction (reads, lone statements)."""
        return await run(self._pool, lambda conn: work(self._tx(conn)), transaction=False)

    async def _write(self, work: Work[T]) -> T:
        """`work` in one transaction; on commit, tell every coordinator what changed."""

        async def in_transaction(conn: Connection) -> tuple[T, Tx]:
            tx = self._tx(conn)
            result = await work(tx)
            if tx.changes.done:
                await dependencies.settle_dependants(tx)
            if tx.changes.places_to_settle:
                await limits.wake_for_freed(tx)
            if not tx.changes.notified:
                for payload in tx.notices():
                    # Queued in the transaction: PostgreSQL delivers it at commit, or never.
                    await tx.execute("notify", self._channel, payload)
            return result, tx

        result, tx = await run(self._pool, in_transaction, transaction=True)
        changes = tx.changes
        if changes:
            tell_listener(self._listener, changes.ops, changes.count, changes.done)
        return result

    # ------------------------------------------------------------------ notifications

    async def _start_relay(self) -> None:
        self._relay = self._make_relay()
        try:
            await self._relay.start()
        except DATABASE_ERRORS as error:
            log.warning(
                "cannot listen on %s yet (%s); retrying in the background", self._channel, error
            )
            self._relay.start_soon()

    def _make_relay(self) -> NotificationRelay:
        settings = {**self._server_settings(), "application_name": self.listener_name}
        return NotificationRelay(
            connect=lambda: connect(self._dsn, settings),
            channel=self._channel,
            on_notice=self._on_remote_notice,
            on_reconnect=self._wake_all,
        )

    def _on_remote_notice(self, notice: Notice) -> None:
        if notice.origin != self._origin:  # our own changes were told at commit
            tell_listener(self._listener, notice.ops, notice.count, notice.done)

    async def _wake_all(self) -> None:
        """After the listening connection came back: notices may have been missed."""
        try:
            rows = await self._read(lambda tx: tx.fetch("queued_operations"))
        except StoreError as error:  # waiters still re-check on their own
            log.warning("could not look for queued jobs after reconnecting: %s", error)
            return
        tell_listener(self._listener, [row["op"] for row in rows], None, ())


@functools.cache
def _statements() -> Mapping[str, str]:
    """The named statements, read once per process (a package resource, not config)."""
    return load_queries("postgres_queries.sql")
