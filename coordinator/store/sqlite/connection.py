"""The SQLite store's connections: the thread each lives on, and the checkpointer that
keeps the WAL short off the event loop."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from coordinator.store.base import StoreError
from coordinator.store.queries import Queries

logger = logging.getLogger(__name__)

T = TypeVar("T")

# When a checkpoint starts: after this many rows written (the writer's total_changes)
# or this long after the first commit it has not covered, whichever comes first. Wider
# than SQLite's own spacing because writes wait for the tail of each checkpoint; the
# time bound caps what a power cut can take (only checkpoints fsync the WAL) and is
# what triggers on a quiet coordinator.
CHECKPOINT_AFTER_CHANGES = 4000
CHECKPOINT_AFTER_S = 0.5

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


def connect(
    path: str, queries: Queries, setup: Sequence[str], check_same_thread: bool = True
) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), set up by `setup`."""
    conn = sqlite3.connect(
        path, isolation_level=None, cached_statements=256, check_same_thread=check_same_thread
    )
    conn.row_factory = sqlite3.Row
    try:
        for name in setup:
            conn.execute(queries[name])
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def reader_on_loop(path: str, queries: Queries) -> sqlite3.Connection:
    """The read-only connection the event loop reads on: it never waits for a lock."""
    return connect(path, queries, LOOP_READER_SETUP)


class DatabaseThread:
    """One thread and the one connection that lives on it.

    `in_flight` counts the calls made from the event loop that the loop has not yet seen
    finish: while it is 0, the thread is not touching its connection, and nothing the
    loop does synchronously can change that (only the loop submits calls).
    """

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._conn: sqlite3.Connection | None = None
        self.in_flight = 0

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        # Shielded: a cancelled caller would cancel the future at once and count the call
        # finished while the thread may still be running it on the shared connection.
        return await asyncio.shield(self.start(function, *args))

    def start(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue `function` on the thread now (it counts in `in_flight` from here on);
        its future, which must not be cancelled."""
        future = asyncio.get_running_loop().run_in_executor(self._executor, function, *args)
        self.in_flight += 1
        future.add_done_callback(self._finished)
        return future

    def _finished(self, _: asyncio.Future[Any]) -> None:
        self.in_flight -= 1

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection; use it from this thread (or, for the writer, from the loop
        while `in_flight` is 0)."""
        if self._conn is None:
            raise StoreError("the SQLite store is not open")
        return self._conn

    def connect(
        self, path: str, queries: Queries, setup: Sequence[str], check_same_thread: bool = True
    ) -> None:
        self._conn = connect(path, queries, setup, check_same_thread)

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


class Checkpointer:
    """PASSIVE checkpoints off the event loop, in two phases, so that writes wait only for
    the short second one.

    The writer connection has `wal_autocheckpoint = 0`: otherwise the commit that crosses
    the threshold would copy the WAL into the database file and fsync both on whichever
    thread committed, which is often the event loop now. Instead, after every
    `every_changes` rows written:

    1. *copy*: a checkpoint on the `copier` thread's connection (the reader thread's)
       copies the bulk of the WAL while writes go on;
    2. *finish*: a checkpoint queued on the writer thread copies what was committed during
       the copy. No write lands while it runs (writes queue behind it), so the whole WAL
       is copied and the next write starts the WAL file over: the file stops growing. A
       copy phase alone would, under a steady stream of writes, always end with new
       frames and the WAL would never start over.
    """

    def __init__(
        self,
        writer: DatabaseThread,
        queries: Queries,
        path: str,
        every: int,
        copier: DatabaseThread | None = None,
        every_s: float | None = None,
    ) -> None:
        self._writer = writer
        self._copier = copier
        self._queries = queries
        self._path = path
        self._every = every
        self._every_s = every_s
        self._mark = 0  # total_changes when the last checkpoint began or finished
        self._covered = 0  # total_changes known to be copied into the database file
        self._latest = 0  # the highest total_changes noted
        self._pending: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._failed = False  # the last finish failed
        self.runs = 0
        self.last_thread: int | None = None  # the thread that finished the last one (tests)
        self.last_result: tuple[int, int, int] | None = None  # (busy, WAL pages, copied)
        self.copy_thread: int | None = None  # the thread that ran the last copy (tests)
        self._changed = asyncio.Event()  # replaced by a fresh one at each change

    def note(self, total_changes: int) -> None:
        """After a commit (on the event loop), with the writer connection's total_changes:
        start a checkpoint when enough was written since the last one and none is under
        way; otherwise make sure one starts within `every_s`."""
        # A commit on the writer thread is noted a loop turn late, maybe after a newer
        # inline one: never go back.
        self._latest = max(self._latest, total_changes)
        if self._latest - self._mark >= self._every:
            self._start(self._latest)
        else:
            self._arm()

    def _arm(self) -> None:
        if self._every_s is None or self._timer is not None or self._closed:
            return
        if self._latest > self._covered:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._every_s, self._time_is_up)

    def _time_is_up(self) -> None:
        self._timer = None
        if self._latest > self._covered:
            self._start(self._latest)
        self._signal()

    def _start(self, total_changes: int) -> None:
        if self._pending is not None and not self._pending.done():
            return  # its finish copies what is written meanwhile; `_ended` sees to the rest
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._mark = total_changes
        if self._copier is None:
            # Queued at once, not from a task: the writes that follow, inline or not,
            # must find the thread busy and queue behind it.
            self._pending = self._writer.start(self._finish)
        else:
            self._pending = asyncio.ensure_future(self._two_phases(self._copier))
        self._pending.add_done_callback(self._ended)

    def _ended(self, _: asyncio.Future[None]) -> None:
        # What the checkpoint did not copy (written after its finish, or held back by a
        # reader's snapshot) gets its time bound again. After a failure (it logged why),
        # the next commit tries again: not every half second on a broken disk.
        if not self._failed:
            self._arm()
        self._signal()

    async def changed(self) -> None:
        """Until a checkpoint round ends or the time bound fires (tests and diagnosis
        wait on this rather than poll)."""
        await self._changed.wait()

    def _signal(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _two_phases(self, copier: DatabaseThread) -> None:
        await copier.call(self._copy, copier)
        await self._writer.call(self._finish)

    async def close(self) -> None:
        """Wait for a checkpoint still under way (it logs its own failure); start no
        more (closing the last connection checkpoints everything)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending is not None:
            await self._pending

    def _copy(self, copier: DatabaseThread) -> None:
        self.copy_thread = threading.get_ident()
        self._run(copier, "copy")

    def _finish(self) -> None:
        self.last_thread = threading.get_ident()
        row = self._run(self._writer, "finish")
        self._failed = row is None
        if row is None:
            return
        self.runs += 1
        # On the writer thread, nothing else writes: the checkpoint saw all committed so
        # far, including what was written during the copy phase.
        total_changes = self._writer.conn.total_changes
        self._mark = total_changes
        busy, wal_pages, copied = row
        if busy == 0 and copied == wal_pages:
            self._covered = total_changes

    @property
    def timed(self) -> bool:
        """Whether a checkpoint is due by time (some commit is not covered yet)."""
        return self._timer is not None

    @property
    def idle(self) -> bool:
        return self._pending is None or self._pending.done()

    def _run(self, thread: DatabaseThread, phase: str) -> tuple[int, int, int] | None:
        """(busy, WAL pages, pages copied); None when the checkpoint failed."""
        try:
            row = thread.conn.execute(self._queries["checkpoint_passive"]).fetchone()
        except (sqlite3.Error, StoreError) as error:
            # The WAL only grows until the next one succeeds; nothing is lost.
            logger.warning("SQLite %s: checkpoint (%s) failed: %s", self._path, phase, error)
            return None
        if row is None:
            return None
        self.last_result = (row[0], row[1], row[2])
        logger.debug("SQLite %s: checkpoint %s busy=%s wal=%s copied=%s", self._path, phase, *row)
        return self.last_result
