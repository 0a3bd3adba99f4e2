"""The SQLite store: the default, embedded backend (one file, zero set-up).

Writes: exactly ONE writer connection per process, shared (never at the same time)
between the event loop and a dedicated writer thread; each verb is one transaction that
starts with `BEGIN IMMEDIATE`, taking the write lock up front instead of upgrading a read
lock half-way (which can fail with SQLITE_BUSY when another process shares the file).

- A short verb on the hot path (a claim, a report, a submit of a few jobs, a heartbeat,
  a bot's registration, a cancel or retry) runs inline on the event loop when the writer
  thread has nothing in flight or queued: a tiny transaction costs ~18 µs, the hop to a
  thread and back ~80 µs. Inline code has no await point, so it is atomic with respect
  to the loop, and nothing can be queued on the thread while it runs. Inline, the
  connection never waits for a lock (busy_timeout 0): when another process holds the
  write lock (a second coordinator, an operator's sqlite3 shell), the transaction rolls
  back and the verb runs again, from the start, on the writer thread, which waits (5 s).
- Anything else (bulk submits, reaper passes, migrations, close), and a short verb while
  the thread is busy, queues on the writer thread in FIFO order.

Reads (listings, stats, lookups) run on a second thread with a read-only connection,
which WAL lets proceed while the writer writes. Single-statement point reads on the hot
path (a job by id, the next run_at of a waiting claim, a claim's outlook) run on the event
loop itself, on a third read-only connection that never waits for a lock; a read that
would wait goes to the reader thread.

Durability: WAL with `synchronous=NORMAL` (see `sqlite_queries.sql`). A commit is in the
WAL file (in the OS page cache) before the verb returns, inline or not, so it survives a
crash or SIGKILL of the process; the last commits before a power loss or an OS crash may
be lost, and the file is never corrupted. That is the usual trade for a job queue whose
producers and bots retry. The writer does not checkpoint on commit
(`wal_autocheckpoint = 0`, so no checkpoint and no fsync ever runs on the event loop):
every few thousand rows written, and at most half a second after a commit, a PASSIVE
checkpoint, which fsyncs the WAL and then the database, runs instead, its bulk on the
reader thread and its tail on the writer thread (`threads.Checkpointer`); what a power
loss can take is bounded by that spacing, in rows and in time, instead of by SQLite's
1,000-page default (which has no bound in time).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

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
from coordinator.store.migrations import Migration, apply_sqlite_migrations, load_migrations
from coordinator.store.queries import Queries, load_queries
from coordinator.store.sqlite import bots as sqlite_bots
from coordinator.store.sqlite import jobs as sqlite_jobs
from coordinator.store.sqlite import leases as sqlite_leases
from coordinator.store.sqlite import reads as sqlite_reads
from coordinator.store.sqlite import reports as sqlite_reports
from coordinator.store.sqlite.rows import Tx, to_us
from coordinator.store.sqlite.threads import (
    CHECKPOINT_AFTER_CHANGES,
    CHECKPOINT_AFTER_S,
    Checkpointer,
    DatabaseThread,
    connect,
)

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
    "pragma_no_autocheckpoint",
)
READER_SETUP = ("pragma_busy_timeout", "pragma_cache_size", "pragma_query_only")
LOOP_READER_SETUP = ("pragma_busy_no_wait", "pragma_cache_size", "pragma_query_only")
# Inline on the loop only up to this many jobs submitted, claimed or reported at once:
# a larger transaction would hold the loop for longer than the hop to the thread costs.
INLINE_MAX_SUBMIT = 10
INLINE_MAX_ROWS = 32


@dataclass(slots=True)
class WritePaths:
    """Where the write transactions ran (for tests and diagnosis)."""

    inline: int = 0  # on the event loop
    thread: int = 0  # on the writer thread
    busy: int = 0  # inline attempts that found the write lock taken, then ran on the thread


def _is_busy(error: sqlite3.Error) -> bool:
    return (getattr(error, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_BUSY


def _store_error(path: str, error: sqlite3.Error) -> StoreError:
    """A failed write as the store's error: `StoreFull` when SQLite had no room (the
    transaction was rolled back, so nothing of it was written)."""
    if (getattr(error, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_FULL:
        return StoreFull(f"SQLite {path}: {error}")
    return StoreError(f"SQLite {path}: {error}")


class SQLiteStore:
    """`Store` on a SQLite file. The constructor does no I/O; `open()` connects and
    migrates."""

    def __init__(
        self,
        path: str,
        clock: Clock,
        retry_delay: RetryDelay,
        checkpoint_after_changes: int = CHECKPOINT_AFTER_CHANGES,
        checkpoint_after_s: float = CHECKPOINT_AFTER_S,
    ) -> None:
        if path == ":memory:" or path.startswith("file::memory:"):
            # The writer and reader threads each open the path: they must share a file.
            raise ValueError("the SQLite store needs a file path, not an in-memory database")
        self._path = path
        self._clock = clock
        self._retry_delay = retry_delay
        self._checkpoint_after = (checkpoint_after_changes, checkpoint_after_s)
        self._listener: StoreListener | None = None
        self._queries: Queries | None = None
        self._writer: DatabaseThread | None = None
        self._reader: DatabaseThread | None = None
        self._loop_reader: sqlite3.Connection | None = None
        self._checkpointer: Checkpointer | None = None
        self.write_paths = WritePaths()

    # ---------------------------------------------------------------- life

    async def open(self) -> None:
        if self._writer is not None:
            return
        queries = load_queries(QUERIES_FILE)
        migrations = load_migrations(MIGRATIONS_FOLDER)
        writer = DatabaseThread("sqlite-writer")
        reader = DatabaseThread("sqlite-reader")
        try:
            await writer.call(self._open_writer, writer, queries, migrations)
            await reader.call(reader.connect, self._path, queries, READER_SETUP)
        except BaseException as exc:
            await reader.call(reader.disconnect, queries, ())
            await writer.call(writer.disconnect, queries, ())
            writer.shutdown()
            reader.shutdown()
            # ValueError: the file has a schema newer than this code.
            if isinstance(exc, sqlite3.Error | ValueError):
                raise StoreError(f"SQLite {self._path}: {exc}") from exc
            raise
        self._queries, self._writer, self._reader = queries, writer, reader
        every, every_s = self._checkpoint_after
        self._checkpointer = Checkpointer(
            writer, queries, self._path, every, copier=reader, every_s=every_s
        )
        try:
            self._loop_reader = connect(self._path, queries, LOOP_READER_SETUP)
        except sqlite3.Error as error:  # the reader thread serves every read then
            logger.warning("SQLite %s: no reader on the event loop: %s", self._path, error)

    def _open_writer(
        self, writer: DatabaseThread, queries: Queries, migrations: Sequence[Migration]
    ) -> None:
        # check_same_thread=False: the event loop runs short writes on this connection
        # too, never while the writer thread has a call in flight (see `_write`).
        writer.connect(self._path, queries, WRITER_SETUP, check_same_thread=False)
        mode = writer.conn.execute(queries["pragma_journal_wal"]).fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            logger.warning("SQLite %s: WAL is not available (journal mode %s)", self._path, mode)
        applied = apply_sqlite_migrations(
            writer.conn, queries, migrations, to_us(self._clock.now())
        )
        if applied:
            logger.info("SQLite %s: applied schema versions %s", self._path, applied)
        # From now on the connection waits for a lock only inside `_write_on_thread`.
        writer.conn.execute(queries["pragma_busy_no_wait"])

    async def close(self) -> None:
        writer, reader, queries = self._writer, self._reader, self._queries
        checkpointer = self._checkpointer
        if writer is None or reader is None or queries is None or checkpointer is None:
            return
        self._writer = self._reader = None
        self._checkpointer = None
        loop_reader, self._loop_reader = self._loop_reader, None
        if loop_reader is not None:
            loop_reader.close()
        await checkpointer.close()  # its copy phase runs on the reader thread
        await reader.call(reader.disconnect, queries, ())
        # The writer closes last: the last connection to close checkpoints the whole WAL
        # and removes it (on the writer thread).
        await writer.call(writer.disconnect, queries, ("pragma_busy_timeout", "pragma_optimize"))
        # Both threads are idle now (their last job just ran), so these joins are quick.
        reader.shutdown()
        writer.shutdown()

    @property
    def checkpointer(self) -> Checkpointer | None:
        """The WAL checkpointer while the store is open (for tests and diagnosis)."""
        return self._checkpointer

    async def ping(self) -> None:
        await self._read(lambda tx: tx.one("ping"))

    def set_listener(self, listener: StoreListener) -> None:
        self._listener = listener

    # ---------------------------------------------------------------- transactions

    async def _write(self, verb: Verb[T], inline: bool = True) -> T:
        """Run `verb` in a write transaction, then tell the listener what changed.

        `inline`: a short verb, run on the event loop when the writer thread has nothing
        in flight (see the module docstring); else, or when the write lock is taken, on
        the writer thread. There it is shielded: a caller cancelled mid-way does not stop
        a transaction that is already queued, so the listener still hears of what it
        committed."""
        writer = self._writer
        if writer is None:
            raise StoreError("the SQLite store is not open")
        now = to_us(self._clock.now())
        if inline and writer.in_flight == 0:
            done = self._write_inline(writer.conn, now, verb)
            if done is not None:
                result, tx = done
                self._committed(tx, writer.conn.total_changes)
                return result
        return await asyncio.shield(self._write_on_thread(writer, now, verb))

    def _write_inline(
        self, conn: sqlite3.Connection, now: int, verb: Verb[T]
    ) -> tuple[T, Tx] | None:
        """The transaction on the loop; None when the write lock was taken (rolled back,
        nothing done: the caller runs the verb again on the thread)."""
        try:
            done = self._transaction(conn, "begin_write", now, verb)
        except sqlite3.Error as error:
            if _is_busy(error):
                self.write_paths.busy += 1
                logger.debug("SQLite %s: write lock taken, to the writer thread", self._path)
                return None
            raise _store_error(self._path, error) from error
        self.write_paths.inline += 1
        return done

    async def _write_on_thread(self, writer: DatabaseThread, now: int, verb: Verb[T]) -> T:
        queries = self._require_queries()

        def run() -> tuple[T, Tx, int]:
            conn = writer.conn
            try:
                conn.execute(queries["pragma_busy_timeout"])
                result, tx = self._transaction(conn, "begin_write", now, verb)
            except sqlite3.Error as error:
                raise _store_error(self._path, error) from error
            finally:
                self._no_wait(conn, queries)
            return result, tx, conn.total_changes

        result, tx, total_changes = await writer.call(run)
        self.write_paths.thread += 1
        self._committed(tx, total_changes)
        return result

    def _no_wait(self, conn: sqlite3.Connection, queries: Queries) -> None:
        """Back to busy_timeout 0 after a transaction on the writer thread: the loop may
        use the connection next, and it must never wait there."""
        try:
            conn.execute(queries["pragma_busy_no_wait"])
        except sqlite3.Error:
            logger.exception("SQLite %s: resetting busy_timeout failed", self._path)

    def _committed(self, tx: Tx, total_changes: int) -> None:
        self._notify(tx)
        if self._checkpointer is not None:
            self._checkpointer.note(total_changes)

    async def _read(self, verb: Verb[T]) -> T:
        reader = self._reader
        if reader is None:
            raise StoreError("the SQLite store is not open")
        now = to_us(self._clock.now())

        def run() -> tuple[T, Tx]:
            try:
                return self._transaction(reader.conn, "begin_read", now, verb)
            except sqlite3.Error as error:
                raise StoreError(f"SQLite {self._path}: {error}") from error

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
        self, conn: sqlite3.Connection, begin: str, now: int, verb: Verb[T]
    ) -> tuple[T, Tx]:
        """`verb` between `begin` and COMMIT, rolled back on any error (sqlite3 errors
        are raised as they are: the caller maps them)."""
        queries = self._require_queries()
        tx = Tx(conn, queries, now, self._retry_delay)
        try:
            conn.execute(queries[begin])
            result = verb(tx)
            conn.execute(queries["commit"])
        except BaseException:
            self._rollback(conn, queries)
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
        return await self._write(
            lambda tx: sqlite_jobs.submit_jobs(tx, jobs), inline=len(jobs) <= INLINE_MAX_SUBMIT
        )

    async def claim_jobs(
        self, bot_id: str, operations: Sequence[str], limit: int, lease_ttl_s: float
    ) -> list[JobRecord] | None:
        return await self._write(
            lambda tx: sqlite_jobs.claim_jobs(tx, bot_id, operations, limit, lease_ttl_s),
            inline=limit <= INLINE_MAX_ROWS,
        )

    async def report(self, bot_id: str, reports: Sequence[ReportInput]) -> list[ReportOutcome]:
        if not reports:
            return []
        return await self._write(
            lambda tx: sqlite_reports.report(tx, bot_id, reports),
            inline=len(reports) <= INLINE_MAX_ROWS,
        )

    async def report_and_claim(
        self,
        bot_id: str,
        reports: Sequence[ReportInput],
        operations: Sequence[str],
        limit: int,
        lease_ttl_s: float,
    ) -> tuple[list[ReportOutcome], list[JobRecord] | None]:
        def verb(tx: Tx) -> tuple[list[ReportOutcome], list[JobRecord] | None]:
            outcomes = sqlite_reports.report(tx, bot_id, reports) if reports else []
            return outcomes, sqlite_jobs.claim_jobs(tx, bot_id, operations, limit, lease_ttl_s)

        return await self._write(verb, inline=max(len(reports), limit) <= INLINE_MAX_ROWS)

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

    async def claim_outlook(self, bot_id: str, operations: Sequence[str]) -> ClaimOutlook:
        return await self._point_read(lambda tx: sqlite_reads.claim_outlook(tx, bot_id, operations))

    # ---------------------------------------------------------------- reaper

    async def expire_leases(self) -> ExpiryOutcome:
        # A pass may release many jobs at once: always on the writer thread.
        return await self._write(sqlite_leases.expire_leases, inline=False)
