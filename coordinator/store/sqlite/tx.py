"""One SQLite store transaction, and where it runs: inline on the event loop, on the
writer thread, or on a reader.

Writes: a short verb runs inline when the writer thread has nothing in flight or
queued, because a tiny transaction costs less than the hop to a thread and back. Inline
code has no await point, so it is atomic with respect to the loop, and nothing can be
queued on the thread while it runs. Inline, the connection never waits for a lock
(busy_timeout 0): when another process holds the write lock, the transaction rolls back
and the verb runs again, from the start, on the writer thread, which waits. Anything
else, and a short verb while the thread is busy, queues on the writer thread in FIFO
order. Every write starts with `BEGIN IMMEDIATE`, taking the write lock up front
instead of upgrading a read lock half-way (which can fail when another process shares
the file).

Reads run on the reader thread, which WAL lets proceed while the writer writes; a
point read (one statement, its own snapshot) runs on the loop's read-only connection,
which never waits: a read that would wait goes to the reader thread.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from botfleet.clock import Clock
from coordinator.store.base import RetryDelay, StoreError, StoreFull
from coordinator.store.changes import Changes
from coordinator.store.queries import Queries
from coordinator.store.sqlite.connection import DatabaseThread
from coordinator.store.sqlite.rows import to_us

logger = logging.getLogger(__name__)

T = TypeVar("T")
Params = Mapping[str, Any]


@dataclass(slots=True)
class Tx:
    """One transaction on the writer (or a reader) connection, and what it changed."""

    conn: sqlite3.Connection
    queries: Queries
    now: int  # microseconds since the epoch, from the store's clock
    retry_delay: RetryDelay
    changes: Changes = field(default_factory=Changes)

    def run(self, name: str, params: Params | None = None) -> sqlite3.Cursor:
        return self.conn.execute(self.queries[name], params or {})

    def many(self, name: str, rows: Iterable[Params]) -> sqlite3.Cursor:
        return self.conn.executemany(self.queries[name], rows)

    def one(self, name: str, params: Params | None = None) -> sqlite3.Row | None:
        # Every row is fetched, so an UPDATE … RETURNING runs to its end at once.
        rows = self.all(name, params)
        return rows[0] if rows else None

    def all(self, name: str, params: Params | None = None) -> list[sqlite3.Row]:
        rows: list[sqlite3.Row] = self.run(name, params).fetchall()
        return rows


Verb = Callable[[Tx], T]
Committed = Callable[[Changes, int], None]  # what changed, the writer's total_changes


@dataclass(slots=True)
class WritePaths:
    """Where the write transactions ran (for tests and diagnosis)."""

    inline: int = 0  # on the event loop
    thread: int = 0  # on the writer thread
    busy: int = 0  # inline attempts that found the write lock taken, then ran on the thread


def _is_busy(error: sqlite3.Error) -> bool:
    return (getattr(error, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_BUSY


def store_error(path: str, error: sqlite3.Error) -> StoreError:
    """A failed write as the store's error: `StoreFull` when SQLite had no room (the
    transaction was rolled back, so nothing of it was written)."""
    if (getattr(error, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_FULL:
        return StoreFull(f"SQLite {path}: {error}")
    return StoreError(f"SQLite {path}: {error}")


@dataclass(slots=True)
class Transactions:
    """Runs verbs in transactions on the open store's connections."""

    path: str
    clock: Clock
    retry_delay: RetryDelay
    queries: Queries
    writer: DatabaseThread
    reader: DatabaseThread
    loop_reader: sqlite3.Connection | None
    committed: Committed
    write_paths: WritePaths = field(default_factory=WritePaths)
    # Runs at the end of every write transaction that ended jobs, before its commit.
    on_jobs_ended: Callable[[Tx], None] | None = None
    # Runs before the commit of every write transaction that freed places under limits.
    on_places_freed: Callable[[Tx], None] | None = None

    async def write(self, verb: Verb[T], inline: bool = True) -> T:
        """Run `verb` in a write transaction, then report what it changed.

        On the writer thread it is shielded: a caller cancelled mid-way does not stop a
        transaction that is already queued, so its changes are still reported."""
        now = to_us(self.clock.now())
        if inline and self.writer.in_flight == 0:
            done = self._write_inline(now, verb)
            if done is not None:
                result, tx = done
                self.committed(tx.changes, self.writer.conn.total_changes)
                return result
        return await asyncio.shield(self._write_on_thread(now, verb))

    def _write_inline(self, now: int, verb: Verb[T]) -> tuple[T, Tx] | None:
        """The transaction on the loop; None when the write lock was taken (rolled back,
        nothing done: the caller runs the verb again on the thread)."""
        try:
            done = self._transaction(self.writer.conn, "begin_write", now, verb)
        except sqlite3.Error as error:
            if _is_busy(error):
                self.write_paths.busy += 1
                logger.debug("SQLite %s: write lock taken, to the writer thread", self.path)
                return None
            raise store_error(self.path, error) from error
        self.write_paths.inline += 1
        return done

    async def _write_on_thread(self, now: int, verb: Verb[T]) -> T:
        writer, queries = self.writer, self.queries

        def run() -> tuple[T, Tx, int]:
            conn = writer.conn
            try:
                conn.execute(queries["pragma_busy_timeout"])
                result, tx = self._transaction(conn, "begin_write", now, verb)
            except sqlite3.Error as error:
                raise store_error(self.path, error) from error
            finally:
                self._no_wait(conn)
            return result, tx, conn.total_changes

        result, tx, total_changes = await writer.call(run)
        self.write_paths.thread += 1
        self.committed(tx.changes, total_changes)
        return result

    def _no_wait(self, conn: sqlite3.Connection) -> None:
        """Back to busy_timeout 0 after a transaction on the writer thread: the loop may
        use the connection next, and it must never wait there."""
        try:
            conn.execute(self.queries["pragma_busy_no_wait"])
        except sqlite3.Error:
            logger.exception("SQLite %s: resetting busy_timeout failed", self.path)

    async def read(self, verb: Verb[T]) -> T:
        reader = self.reader
        now = to_us(self.clock.now())

        def run() -> tuple[T, Tx]:
            try:
                return self._transaction(reader.conn, "begin_read", now, verb)
            except sqlite3.Error as error:
                raise StoreError(f"SQLite {self.path}: {error}") from error

        result, _ = await reader.call(run)
        return result

    async def point_read(self, verb: Verb[T]) -> T:
        """A read of ONE statement (its own snapshot, no transaction needed), on the
        event loop; on the reader thread when the loop's connection would wait."""
        conn = self.loop_reader
        if conn is not None:
            try:
                return verb(Tx(conn, self.queries, to_us(self.clock.now()), self.retry_delay))
            except sqlite3.OperationalError as error:
                logger.debug("SQLite %s: point read on the reader thread: %s", self.path, error)
        return await self.read(verb)

    def _transaction(
        self, conn: sqlite3.Connection, begin: str, now: int, verb: Verb[T]
    ) -> tuple[T, Tx]:
        """`verb` between `begin` and COMMIT, rolled back on any error (sqlite3 errors
        are raised as they are: the caller maps them)."""
        tx = Tx(conn, self.queries, now, self.retry_delay)
        try:
            conn.execute(self.queries[begin])
            result = verb(tx)
            if tx.changes.done and self.on_jobs_ended is not None:
                self.on_jobs_ended(tx)
            if tx.changes.places_to_settle and self.on_places_freed is not None:
                self.on_places_freed(tx)
            conn.execute(self.queries["commit"])
        except BaseException:
            self._rollback(conn)
            raise
        return result, tx

    def _rollback(self, conn: sqlite3.Connection) -> None:
        if not conn.in_transaction:
            return
        try:
            conn.execute(self.queries["rollback"])
        except sqlite3.Error:
            logger.exception("SQLite %s: rollback failed", self.path)
