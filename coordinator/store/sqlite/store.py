"""The SQLite store: the default, embedded backend (one file, zero set-up).

Threads: every write runs on ONE dedicated writer thread with its own connection, so
the event loop never blocks on the database and there is exactly one writer; reads
(listings, stats, lookups) run on a second thread with a read-only connection, which
WAL lets proceed while the writer writes. Single-statement point reads on the hot path
(a job by id, the next run_at of a waiting claim) run on the event loop itself, on a
third read-only connection that never waits for a lock: an index probe costs less than
the hop to a thread and back; a read that would wait goes to the reader thread.
Each verb is one transaction; writes start with `BEGIN IMMEDIATE`, taking the write
lock up front instead of upgrading a read lock half-way (which can fail with
SQLITE_BUSY when another process shares the file).

Durability: WAL with `synchronous=NORMAL` (see `sqlite_queries.sql`). A commit survives
a crash or SIGKILL of the process; the last commits before a power loss or an OS crash
may be lost, and the file is never corrupted. That is the usual trade for a job queue
whose producers and bots retry.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

from botfleet.clock import Clock
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
from coordinator.store.migrations import Migration, apply_sqlite_migrations, load_migrations
from coordinator.store.queries import Queries, load_queries
from coordinator.store.sqlite import bots as sqlite_bots
from coordinator.store.sqlite import jobs as sqlite_jobs
from coordinator.store.sqlite import leases as sqlite_leases
from coordinator.store.sqlite import reads as sqlite_reads
from coordinator.store.sqlite import reports as sqlite_reports
from coordinator.store.sqlite.rows import Tx, to_us

logger = logging.getLogger(__name__)

T = TypeVar("T")
Verb = Callable[[Tx], T]

QUERIES_FILE = "sqlite_queries.sql"
MIGRATIONS_FOLDER = "sqlite_migrations"
WRITER_SETUP = (
    "pragma_busy_timeout",
    "pragma_synchronous_normal",
    "pragma_foreign_keys",
    "pragma_cache_size",
    "pragma_temp_store_memory",
)
READER_SETUP = ("pragma_busy_timeout", "pragma_cache_size", "pragma_query_only")
LOOP_READER_SETUP = ("pragma_busy_no_wait", "pragma_cache_size", "pragma_query_only")


class _DatabaseThread:
    """One thread and the one connection that lives on it (sqlite3 connections are
    bound to the thread that made them)."""

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._conn: sqlite3.Connection | None = None

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function, *args)

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection; call only from this thread."""
        if self._conn is None:
            raise StoreError("the SQLite store is not open")
        return self._conn

    def connect(self, path: str, queries: Queries, setup: Sequence[str]) -> None:
        self._conn = _connect(path, queries, setup)

    def disconnect(self, queries: Queries, final: Sequence[str]) -> None:
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        try:
            for name in final:
                conn.execute(queries[name])
        except sqlite3.Error:
            logger.warning("SQLite: closing statements failed", exc_info=True)
        finally:
            conn.close()

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)


def _connect(path: str, queries: Queries, setup: Sequence[str]) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), set up by `setup`."""
    conn = sqlite3.connect(path, isolation_level=None, cached_statements=256)
    conn.row_factory = sqlite3.Row
    try:
        for name in setup:
            conn.execute(queries[name])
    except sqlite3.Error:
        conn.close()
        raise
    return conn


class SQLiteStore:
    """`Store` on a SQLite file. The constructor does no I/O; `open()` connects and
    migrates."""

    def __init__(self, path: str, clock: Clock, retry_delay: RetryDelay) -> None:
        if path == ":memory:" or path.startswith("file::memory:"):
            # The writer and reader threads each open the path: they must share a file.
            raise ValueError("the SQLite store needs a file path, not an in-memory database")
        self._path = path
        self._clock = clock
        self._retry_delay = retry_delay
        self._listener: StoreListener | None = None
        self._queries: Queries | None = None
        self._writer: _DatabaseThread | None = None
        self._reader: _DatabaseThread | None = None
        self._loop_reader: sqlite3.Connection | None = None

    # ---------------------------------------------------------------- life

    async def open(self) -> None:
        if self._writer is not None:
            return
        queries = load_queries(QUERIES_FILE)
        migrations = load_migrations(MIGRATIONS_FOLDER)
        writer = _DatabaseThread("sqlite-writer")
        reader = _DatabaseThread("sqlite-reader")
        try:
            await writer.call(self._open_writer, writer, queries, migrations)
            await reader.call(reader.connect, self._path, queries, READER_SETUP)
        except BaseException as exc:
            await writer.call(writer.disconnect, queries, ())
            await reader.call(reader.disconnect, queries, ())
            writer.shutdown()
            reader.shutdown()
            # ValueError: the file has a schema newer than this code.
            if isinstance(exc, sqlite3.Error | ValueError):
                raise StoreError(f"SQLite {self._path}: {exc}") from exc
            raise
        self._queries, self._writer, self._reader = queries, writer, reader
        try:
            self._loop_reader = _connect(self._path, queries, LOOP_READER_SETUP)
        except sqlite3.Error as error:  # the reader thread serves every read then
            logger.warning("SQLite %s: no reader on the event loop: %s", self._path, error)

    def _open_writer(
        self, writer: _DatabaseThread, queries: Queries, migrations: Sequence[Migration]
    ) -> None:
        writer.connect(self._path, queries, WRITER_SETUP)
        mode = writer.conn.execute(queries["pragma_journal_wal"]).fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            logger.warning("SQLite %s: WAL is not available (journal mode %s)", self._path, mode)
        applied = apply_sqlite_migrations(
            writer.conn, queries, migrations, to_us(self._clock.now())
        )
        if applied:
            logger.info("SQLite %s: applied schema versions %s", self._path, applied)

    async def close(self) -> None:
        writer, reader, queries = self._writer, self._reader, self._queries
        if writer is None or reader is None or queries is None:
            return
        self._writer = self._reader = None
        loop_reader, self._loop_reader = self._loop_reader, None
        if loop_reader is not None:
            loop_reader.close()
        await reader.call(reader.disconnect, queries, ())
        await writer.call(writer.disconnect, queries, ("pragma_optimize",))
        # Both threads are idle now (their last job just ran), so these joins are quick.
        reader.shutdown()
        writer.shutdown()

    async def ping(self) -> None:
        await self._read(lambda tx: tx.one("ping"))

    def set_listener(self, listener: StoreListener) -> None:
        self._listener = listener

    # ---------------------------------------------------------------- transactions

    async def _write(self, verb: Verb[T]) -> T:
        """Run `verb` in a write transaction, then tell the listener what changed.

        Shielded: a caller cancelled mid-way does not stop a transaction that is
        already queued, so the listener still hears of what it committed."""
        writer = self._writer
        if writer is None:
            raise StoreError("the SQLite store is not open")
        return await asyncio.shield(self._write_and_notify(writer, verb))

    async def _write_and_notify(self, writer: _DatabaseThread, verb: Verb[T]) -> T:
        now = to_us(self._clock.now())

        def run() -> tuple[T, Tx]:
            return self._transaction(writer, "begin_write", now, verb)

        result, tx = await writer.call(run)
        self._notify(tx)
        return result

    async def _read(self, verb: Verb[T]) -> T:
        reader = self._reader
        if reader is None:
            raise StoreError("the SQLite store is not open")
        now = to_us(self._clock.now())

        def run() -> tuple[T, Tx]:
            return self._transaction(reader, "begin_read", now, verb)

        result, _ = await reader.call(run)
        return result

    async def _point_read(self, verb: Verb[T]) -> T:
        """A read of ONE statement (its own snapshot, no transaction needed), on the
        event loop; on the reader thread when the loop's connection would wait."""
        conn, queries = self._loop_reader, self._queries
        if conn is not None and queries is not None:
            try:
                return verb(Tx(conn, queries, to_us(self._clock.now()), self._retry_delay))
            except sqlite3.OperationalError as error:
                logger.debug("SQLite %s: point read on the reader thread: %s", self._path, error)
        return await self._read(verb)

    def _transaction(
        self, thread: _DatabaseThread, begin: str, now: int, verb: Verb[T]
    ) -> tuple[T, Tx]:
        queries = self._require_queries()
        conn = thread.conn
        tx = Tx(conn, queries, now, self._retry_delay)
        try:
            conn.execute(queries[begin])
            result = verb(tx)
            conn.execute(queries["commit"])
        except BaseException as exc:
            self._rollback(conn, queries)
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"SQLite {self._path}: {exc}") from exc
            raise
        return result, tx

    def _rollback(self, conn: sqlite3.Connection, queries: Queries) -> None:
        if not conn.in_transaction:
            return
        try:
            conn.execute(queries["rollback"])
        except sqlite3.Error:
            logger.exception("SQLite %s: rollback failed", self._path)

    def _require_queries(self) -> Queries:
        if self._queries is None:
            raise StoreError("the SQLite store is not open")
        return self._queries

    def _notify(self, tx: Tx) -> None:
        listener = self._listener
        if listener is None or (not tx.available and not tx.finished):
            return
        try:
            if tx.available:
                listener.jobs_available(sorted(tx.available), tx.available.total())
            for job_id in tx.finished:
                listener.job_finished(job_id)
        except Exception:
            # The change is committed; a broken listener only delays waiters.
            logger.exception("store listener failed")

    # ---------------------------------------------------------------- bots

    async def register_bot(self, registration: Registration) -> RegisterOutcome:
        return await self._write(lambda tx: sqlite_bots.register_bot(tx, registration))

    async def get_bot(self, bot_id: str) -> BotRecord | None:
        return await self._read(lambda tx: sqlite_reads.get_bot(tx, bot_id))

    async def list_bots(self) -> list[BotRecord]:
        return await self._read(sqlite_reads.list_bots)

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
            lambda tx: sqlite_bots.heartbeat(
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
        return await self._write(
            lambda tx: sqlite_bots.update_bot(
                tx, bot_id, operations, max_concurrency, paused, command
            )
        )

    async def deregister_bot(self, bot_id: str, instance_id: str) -> tuple[str, ...] | None:
        return await self._write(lambda tx: sqlite_bots.deregister_bot(tx, bot_id, instance_id))

    # ---------------------------------------------------------------- jobs

    async def submit_jobs(self, jobs: Sequence[NewJob]) -> list[SubmitOutcome]:
        if not jobs:
            return []
        return await self._write(lambda tx: sqlite_jobs.submit_jobs(tx, jobs))

    async def claim_jobs(
        self, bot_id: str, operations: Sequence[str], limit: int, lease_ttl_s: float
    ) -> list[JobRecord] | None:
        return await self._write(
            lambda tx: sqlite_jobs.claim_jobs(tx, bot_id, operations, limit, lease_ttl_s)
        )

    async def report(self, bot_id: str, reports: Sequence[ReportInput]) -> list[ReportOutcome]:
        if not reports:
            return []
        return await self._write(lambda tx: sqlite_reports.report(tx, bot_id, reports))

    async def set_progress(
        self, bot_id: str, job_id: str, attempt: int | None, progress: float, message: str | None
    ) -> ReportOutcome:
        return await self._write(
            lambda tx: sqlite_reports.set_progress(tx, bot_id, job_id, attempt, progress, message)
        )

    async def get_job(self, job_id: str) -> JobRecord | None:
        return await self._point_read(lambda tx: sqlite_reads.get_job(tx, job_id))

    async def list_jobs(
        self, state: str | None, op: str | None, limit: int, cursor: str | None
    ) -> tuple[list[JobRecord], str | None]:
        sqlite_reads.decode_cursor(cursor)  # a malformed cursor fails before any I/O
        return await self._read(lambda tx: sqlite_reads.list_jobs(tx, state, op, limit, cursor))

    async def list_attempts(self, job_id: str) -> list[AttemptRecord]:
        return await self._read(lambda tx: sqlite_reads.list_attempts(tx, job_id))

    async def cancel_job(self, job_id: str) -> tuple[ReportOutcome, JobRecord | None]:
        return await self._write(lambda tx: sqlite_jobs.cancel_job(tx, job_id))

    async def retry_job(self, job_id: str) -> tuple[ReportOutcome, JobRecord | None]:
        return await self._write(lambda tx: sqlite_jobs.retry_job(tx, job_id))

    async def stats(self, window_s: int = 60) -> StatsRecord:
        return await self._read(lambda tx: sqlite_reads.stats(tx, window_s))

    async def next_run_at(self, operations: Sequence[str]) -> datetime | None:
        if not operations:
            return None
        return await self._point_read(lambda tx: sqlite_reads.next_run_at(tx, operations))

    # ---------------------------------------------------------------- reaper

    async def expire_leases(self) -> ExpiryOutcome:
        return await self._write(sqlite_leases.expire_leases)
