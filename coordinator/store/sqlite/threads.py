"""The SQLite store's threads and connections: a thread that runs calls on one
connection, and the checkpointer that keeps the WAL short off the event loop."""

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
# or this long after the first commit it has not covered, whichever comes first. A job
# sent alone (submit, claim, report) changes about 10 rows and writes about 24 WAL pages:
# at 400 rows (SQLite's own spacing, about 1,000 pages) a busy coordinator checkpointed
# every 40 jobs, and the tail of each, which writes wait for, landed in 2.8 % of
# submit-to-result times: the p99. The time bound caps what a power cut can take (the
# WAL is fsynced only by checkpoints) and, on a quiet coordinator, is what triggers.
CHECKPOINT_AFTER_CHANGES = 4000
CHECKPOINT_AFTER_S = 0.5


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
       copies the bulk of the WAL while writes go on (a few ms for ~1,000 pages);
    2. *finish*: a checkpoint queued on the writer thread copies what was committed during
       the copy. No write lands while it runs (writes queue behind it), so the whole WAL
       is copied and the next write starts the WAL file over: the file stops growing. A
       copy phase alone would, under a steady stream of writes, always end with new
       frames and the WAL would never start over.

    Writes used to wait for the whole checkpoint (about 12 us per transaction in the
    WAL); now they wait for the tail only.
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
        self._mark = 0  # total_changes up to which the WAL was last checkpointed
        self._latest = 0  # total_changes after the last commit noted
        self._pending: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.runs = 0
        self.last_thread: int | None = None  # the thread that finished the last one (tests)
        self.last_result: tuple[int, int, int] | None = None  # (busy, WAL pages, copied)
        self.copy_thread: int | None = None  # the thread that ran the last copy (tests)

    def note(self, total_changes: int) -> None:
        """After a commit (on the event loop), with the writer connection's total_changes:
        start a checkpoint when enough was written since the last one and none is under
        way; otherwise make sure one starts within `every_s`."""
        self._latest = total_changes
        if total_changes - self._mark < self._every:
            if self._every_s is not None and self._timer is None:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(self._every_s, self._time_is_up)
            return
        self._start(total_changes)

    def _time_is_up(self) -> None:
        self._timer = None
        if self._latest > self._mark:
            self._start(self._latest)

    def _start(self, total_changes: int) -> None:
        if self._pending is not None and not self._pending.done():
            # Its finish checkpoints what is written meanwhile; what comes after that
            # is noted (and timed) again.
            return
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

    async def _two_phases(self, copier: DatabaseThread) -> None:
        await copier.call(self._copy, copier)
        await self._writer.call(self._finish)

    async def close(self) -> None:
        """Wait for a checkpoint still under way (it logs its own failure); start no
        more (closing the last connection checkpoints everything)."""
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
        if self._run(self._writer, "finish"):
            self.runs += 1
            # On the writer thread, nothing else writes: all committed so far is copied,
            # including what was written during the copy phase.
            self._mark = self._writer.conn.total_changes

    @property
    def timed(self) -> bool:
        """Whether a checkpoint is due by time (some commit is not covered yet)."""
        return self._timer is not None

    @property
    def idle(self) -> bool:
        return self._pending is None or self._pending.done()

    def _run(self, thread: DatabaseThread, phase: str) -> bool:
        try:
            row = thread.conn.execute(self._queries["checkpoint_passive"]).fetchone()
        except (sqlite3.Error, StoreError) as error:
            # The WAL only grows until the next one succeeds; nothing is lost.
            logger.warning("SQLite %s: checkpoint (%s) failed: %s", self._path, phase, error)
            return False
        if row is not None:
            self.last_result = (row[0], row[1], row[2])
            logger.debug(
                "SQLite %s: checkpoint %s busy=%s wal=%s copied=%s", self._path, phase, *row
            )
        return True
