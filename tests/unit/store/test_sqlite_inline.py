"""Where the SQLite store runs its transactions: short writes inline on the event loop
while the writer thread is idle, everything else (and anything that would wait for a
lock) on the threads; WAL checkpoints off the loop. Real SQLite files; the verbs are
wrapped only to see which thread ran them."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from botfleet.clock import FakeClock
from coordinator.store.base import ClaimInput, ReportInput, ReportOutcome, StoreError
from coordinator.store.queries import load_queries
from coordinator.store.sqlite import SQLiteStore
from coordinator.store.sqlite import jobs as sqlite_jobs
from coordinator.store.sqlite import leases as sqlite_leases
from coordinator.store.sqlite import reads as sqlite_reads
from coordinator.store.sqlite import reports as sqlite_reports
from coordinator.store.sqlite.connection import Checkpointer, DatabaseThread
from coordinator.store.sqlite.store import INLINE_MAX_SUBMIT
from coordinator.store.sqlite.tx import Tx, WritePaths
from tests.unit.store.support import (
    JOB_LEASE_TTL_S,
    new_job,
    register,
    retry_delay_for_tests,
    wait_until,
)

DEADLINE_S = 60.0

# Another process holding the write lock until a line arrives on its stdin.
HOLD_WRITE_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""

# Another process in the middle of rebuilding the WAL index (as after a crash): it holds
# the write, checkpoint and recover locks of the -shm file (unix VFS byte offsets
# 120-122) and the first copy of the index header no longer matches the second. A reader
# that finds the header so must rebuild it itself, which needs those locks.
HOLD_WAL_RECOVERY = """
import fcntl, os, sys
fd = os.open(sys.argv[1] + "-shm", os.O_RDWR)
for offset in (120, 121, 122):
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
os.pwrite(fd, bytes(48), 0)
print("locked", flush=True)
sys.stdin.readline()
os.close(fd)
"""


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "botfleet.db"


# Checkpoints by row count only, so that none starts on a timer in the middle of a test
# that counts where its writes ran (a checkpoint's tail makes writes queue on the thread).
ROWS_PER_CHECKPOINT = 400
NO_TIME_BOUND_S = 3600.0


@pytest.fixture
async def sqlite_store(db_path: Path, clock: FakeClock) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(
        str(db_path), clock, retry_delay_for_tests, ROWS_PER_CHECKPOINT, NO_TIME_BOUND_S
    )
    await store.open()
    try:
        yield store
    finally:
        await store.close()


class Seen:
    """Which thread ran each call of a wrapped verb, and a setting of the connection
    it ran on at that moment."""

    def __init__(self, pragma: str = "busy_timeout") -> None:
        self.pragma = pragma
        self.calls: list[tuple[int, int]] = []

    def wrap(self, monkeypatch: pytest.MonkeyPatch, module: ModuleType, name: str) -> None:
        original: Callable[..., Any] = getattr(module, name)

        def spy(tx: Tx, *args: Any) -> Any:
            (setting,) = tx.conn.execute(f"PRAGMA {self.pragma}").fetchone()
            self.calls.append((threading.get_ident(), setting))
            return original(tx, *args)

        monkeypatch.setattr(module, name, spy)

    @property
    def threads(self) -> list[int]:
        return [thread for thread, _ in self.calls]


def _query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@asynccontextmanager
async def _other_process(script: str, db_path: Path) -> AsyncIterator[None]:
    """Run `script` on the database in another process while the block runs."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        str(db_path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), DEADLINE_S)
        assert line == b"locked\n"
        yield
    finally:
        process.stdin.write(b"\n")
        await process.stdin.drain()
        assert await asyncio.wait_for(process.wait(), DEADLINE_S) == 0


@asynccontextmanager
async def _write_lock_held(holder: str, db_path: Path) -> AsyncIterator[None]:
    if holder == "process":
        async with _other_process(HOLD_WRITE_LOCK, db_path):
            yield
        return
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("COMMIT")
    finally:
        conn.close()


async def test_short_writes_run_inline_on_the_loop_and_long_ones_on_the_thread(
    sqlite_store: SQLiteStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.get_ident()
    seen = Seen()
    seen.wrap(monkeypatch, sqlite_jobs, "submit_jobs")
    seen.wrap(monkeypatch, sqlite_jobs, "claim_jobs")
    seen.wrap(monkeypatch, sqlite_reports, "report")
    bot = await register(sqlite_store, clock)
    await sqlite_store.submit_jobs([new_job(clock)])
    (job,) = await sqlite_store.claim_jobs(ClaimInput(bot.id, ["sum"], 1, JOB_LEASE_TTL_S)) or []
    (outcome,) = await sqlite_store.report(
        bot.id, [ReportInput(job.id, "complete", job.attempt, {"sum": 3})]
    )
    assert outcome == ReportOutcome.ACCEPTED
    # On the loop, and never waiting for a lock there.
    assert seen.calls == [(loop_thread, 0)] * 3
    assert sqlite_store.write_paths == WritePaths(inline=4)

    await sqlite_store.submit_jobs([new_job(clock) for _ in range(INLINE_MAX_SUBMIT + 1)])
    seen.wrap(monkeypatch, sqlite_leases, "expire_leases")
    await sqlite_store.expire_leases()
    writer_thread = seen.threads[-1]
    assert writer_thread != loop_thread
    # On the writer thread, waiting for a lock held by another process is allowed.
    assert seen.calls[-2:] == [(writer_thread, 5000)] * 2
    assert sqlite_store.write_paths == WritePaths(inline=4, thread=2)
    # The thread is idle again: the next short write is inline.
    await sqlite_store.submit_jobs([new_job(clock)])
    assert seen.calls[-1] == (loop_thread, 0)


async def test_short_writes_queue_in_order_behind_a_busy_writer_thread(
    sqlite_store: SQLiteStore, clock: FakeClock, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.get_ident()
    entered, gate = threading.Event(), threading.Event()
    original_expiry = sqlite_leases.expire_leases

    def slow_expiry(tx: Tx) -> Any:
        entered.set()
        if not gate.wait(DEADLINE_S):
            raise RuntimeError("the test never let the reaper pass go on")
        return original_expiry(tx)

    monkeypatch.setattr(sqlite_leases, "expire_leases", slow_expiry)
    seen = Seen()
    seen.wrap(monkeypatch, sqlite_jobs, "submit_jobs")
    reaper = asyncio.create_task(sqlite_store.expire_leases())
    await wait_until(entered.is_set)
    submits = [
        asyncio.create_task(sqlite_store.submit_jobs([new_job(clock, payload={"n": n})]))
        for n in range(5)
    ]
    await asyncio.sleep(0)  # a yield: every submit has had its first turn, none has run
    assert seen.calls == []
    gate.set()
    await reaper
    await asyncio.gather(*submits)
    assert len(set(seen.threads)) == 1 and seen.threads[0] != loop_thread
    assert sqlite_store.write_paths == WritePaths(thread=6)
    ordered = _query(db_path, "SELECT json_extract(payload, '$.n') FROM jobs ORDER BY rowid")
    assert [n for (n,) in ordered] == [0, 1, 2, 3, 4]
    await sqlite_store.submit_jobs([new_job(clock)])
    assert seen.calls[-1] == (loop_thread, 0)


@pytest.mark.parametrize("holder", ["connection", "process"])
async def test_a_write_lock_held_elsewhere_sends_the_write_to_the_thread(
    sqlite_store: SQLiteStore,
    clock: FakeClock,
    db_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    holder: str,
) -> None:
    loop_thread = threading.get_ident()
    seen = Seen()
    seen.wrap(monkeypatch, sqlite_jobs, "submit_jobs")
    async with _write_lock_held(holder, db_path):
        task = asyncio.create_task(sqlite_store.submit_jobs([new_job(clock)]))
        # The inline BEGIN IMMEDIATE failed at once; the writer thread now waits.
        await wait_until(lambda: sqlite_store.write_paths.busy == 1)
    (outcome,) = await task
    assert outcome.created
    # The verb ran once, on the thread (the inline attempt stopped at BEGIN).
    assert len(seen.calls) == 1
    thread, busy_timeout = seen.calls[0]
    assert thread != loop_thread and busy_timeout == 5000
    assert sqlite_store.write_paths == WritePaths(thread=1, busy=1)
    assert _query(db_path, "SELECT id FROM jobs") == [(outcome.job.id,)]
    # Back to inline, and back to never waiting on the loop.
    await sqlite_store.submit_jobs([new_job(clock)])
    assert seen.calls[-1] == (loop_thread, 0)
    assert sqlite_store.write_paths == WritePaths(inline=1, thread=1, busy=1)


async def test_an_inline_sqlite_error_is_a_store_error_and_rolled_back(
    sqlite_store: SQLiteStore, clock: FakeClock, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = sqlite_jobs.submit_jobs

    def broken(tx: Tx, jobs: Any) -> Any:
        outcomes = original(tx, jobs)
        tx.conn.execute("INSERT INTO no_such_table VALUES (1)")
        return outcomes

    monkeypatch.setattr(sqlite_jobs, "submit_jobs", broken)
    with pytest.raises(StoreError, match="no such table"):
        await sqlite_store.submit_jobs([new_job(clock)])
    monkeypatch.setattr(sqlite_jobs, "submit_jobs", original)
    assert _query(db_path, "SELECT count(*) FROM jobs") == [(0,)]
    (outcome,) = await sqlite_store.submit_jobs([new_job(clock)])
    assert outcome.created
    assert sqlite_store.write_paths == WritePaths(inline=1)


async def test_an_inline_error_of_the_code_propagates_as_it_is_and_rolls_back(
    sqlite_store: SQLiteStore, clock: FakeClock, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = sqlite_jobs.submit_jobs

    def buggy(tx: Tx, jobs: Any) -> Any:
        original(tx, jobs)
        raise ValueError("a bug in a verb")

    monkeypatch.setattr(sqlite_jobs, "submit_jobs", buggy)
    with pytest.raises(ValueError, match="a bug in a verb"):
        await sqlite_store.submit_jobs([new_job(clock)])
    monkeypatch.setattr(sqlite_jobs, "submit_jobs", original)
    assert _query(db_path, "SELECT count(*) FROM jobs") == [(0,)]
    await sqlite_store.submit_jobs([new_job(clock)])
    assert _query(db_path, "SELECT count(*) FROM jobs") == [(1,)]


async def test_a_full_disk_inline_is_a_store_error_and_the_connection_recovers(
    sqlite_store: SQLiteStore, clock: FakeClock, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = sqlite_jobs.submit_jobs
    limit = {"pages": 0}

    def limited(tx: Tx, jobs: Any) -> Any:
        # The database may not grow past `pages` (0: as big as it is now): a full disk.
        if not limit["pages"]:
            (pages,) = tx.conn.execute("PRAGMA page_count").fetchone()
            limit["pages"] = pages
        tx.conn.execute(f"PRAGMA max_page_count = {limit['pages']}")
        return original(tx, jobs)

    monkeypatch.setattr(sqlite_jobs, "submit_jobs", limited)
    big = {"blob": "x" * 200_000}
    with pytest.raises(StoreError, match="full"):
        await sqlite_store.submit_jobs([new_job(clock, payload=big)])
    limit["pages"] = 1_000_000  # space again
    (outcome,) = await sqlite_store.submit_jobs([new_job(clock, payload=big)])
    assert outcome.created
    assert _query(db_path, "SELECT count(*) FROM jobs") == [(1,)]
    assert sqlite_store.write_paths == WritePaths(inline=1)


async def test_the_wal_is_checkpointed_off_the_loop_and_stops_growing(
    sqlite_store: SQLiteStore, clock: FakeClock, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.get_ident()
    checkpointer = sqlite_store.checkpointer
    assert checkpointer is not None
    seen = Seen("wal_autocheckpoint")
    seen.wrap(monkeypatch, sqlite_jobs, "submit_jobs")
    wal = Path(f"{db_path}-wal")
    sizes: list[int] = []
    for _round in range(6):
        # Each submit writes at least one row: a checkpoint starts in every round.
        for _ in range(ROWS_PER_CHECKPOINT):
            await sqlite_store.submit_jobs([new_job(clock)])
        await wait_until(lambda: checkpointer.runs >= 1 and checkpointer.idle, DEADLINE_S)
        sizes.append(wal.stat().st_size)  # noqa: ASYNC240 (a stat, the loop has no other work)
    # The commits never checkpoint by themselves (no fsync on the loop); the
    # checkpoints ran on the writer thread.
    assert {setting for _, setting in seen.calls} == {0}
    assert checkpointer.last_thread not in (None, loop_thread)
    # The bulk was copied on another thread (the reader's), while writes went on.
    assert checkpointer.copy_thread not in (None, loop_thread, checkpointer.last_thread)
    assert sqlite_store.write_paths.inline > 0
    # The WAL starts over after each checkpoint: after six rounds it is about as long
    # as one round's writes (they vary a little as the tables grow), not six.
    assert sizes[-1] < 1.5 * sizes[0]


class _Checkpoints:
    """A writer and a copier thread on one WAL database with a table `t`, for driving a
    `Checkpointer` by hand."""

    def __init__(self, tmp_path: Path) -> None:
        self.queries = load_queries("sqlite_queries.sql")
        self.path = str(tmp_path / "checkpoints.db")
        self.writer = DatabaseThread("test-writer")
        self.copier = DatabaseThread("test-copier")

    async def __aenter__(self) -> _Checkpoints:
        await self.writer.call(
            self.writer.connect, self.path, self.queries, ("pragma_journal_wal",)
        )
        await self.copier.call(self.copier.connect, self.path, self.queries, ())
        await self.writer.call(self.writer.conn.execute, "CREATE TABLE t (n INTEGER)")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.copier.call(self.copier.disconnect, self.queries, ())
        await self.writer.call(self.writer.disconnect, self.queries, ())
        self.copier.shutdown()
        self.writer.shutdown()

    def checkpointer(self, every: int, every_s: float | None = None) -> Checkpointer:
        return Checkpointer(
            self.writer, self.queries, self.path, every, copier=self.copier, every_s=every_s
        )

    async def write(self, rows: int) -> int:
        """`rows` rows written on the writer thread; the writer's total_changes after."""

        def insert() -> int:
            for n in range(rows):
                self.writer.conn.execute("INSERT INTO t VALUES (?)", (n,))
            return self.writer.conn.total_changes

        return await self.writer.call(insert)


async def test_what_is_written_during_the_copy_is_copied_by_the_finish(tmp_path: Path) -> None:
    """Writes go on while a checkpoint copies; its finish, on the writer thread, copies
    what they added, so the whole WAL is in the database and the next write starts it
    over."""
    async with _Checkpoints(tmp_path) as db:
        checkpointer = db.checkpointer(every=10)
        copying = threading.Event()
        held = db.copier.start(copying.wait)  # the copier thread is busy: the copy waits
        checkpointer.note(await db.write(10))  # a round starts
        checkpointer.note(await db.write(50))  # written during it: no new round
        copying.set()
        await held
        await checkpointer.close()
        assert checkpointer.runs == 1
        assert checkpointer.last_result is not None
        busy, wal_pages, copied = checkpointer.last_result
        assert busy == 0 and wal_pages == copied > 0
        checkpointer.note(await db.write(5))  # under the threshold since the finish
        assert checkpointer.idle and not checkpointer.timed


async def test_a_commit_is_checkpointed_within_the_time_bound(tmp_path: Path) -> None:
    """Far below the row count, a commit still gets its checkpoint (and so its fsync)
    once `every_s` has passed: a quiet coordinator's power-cut window is bounded."""
    async with _Checkpoints(tmp_path) as db:
        checkpointer = db.checkpointer(every=1_000_000, every_s=0.01)
        checkpointer.note(await db.write(1))
        assert checkpointer.timed
        await wait_until(
            lambda: checkpointer.runs == 1 and checkpointer.idle and not checkpointer.timed,
            DEADLINE_S,
        )
        assert checkpointer.last_result is not None
        busy, wal_pages, copied = checkpointer.last_result
        assert busy == 0 and wal_pages == copied > 0
        checkpointer.note(await db.write(1))
        await wait_until(lambda: checkpointer.runs == 2 and checkpointer.idle, DEADLINE_S)
        await checkpointer.close()


async def test_a_late_note_of_an_older_commit_does_not_hide_a_newer_one(tmp_path: Path) -> None:
    """The store notes a commit made on the writer thread a loop turn late, possibly
    after a newer inline commit: the newer one still gets its checkpoint in time."""
    async with _Checkpoints(tmp_path) as db:
        checkpointer = db.checkpointer(every=1_000_000, every_s=0.01)
        checkpointer.note(await db.write(1))
        older = await db.write(1)  # committed, its note still to come
        await wait_until(lambda: checkpointer.runs == 1 and checkpointer.idle, DEADLINE_S)
        newer = await db.write(1)
        checkpointer.note(newer)
        checkpointer.note(older)
        await wait_until(lambda: checkpointer.runs == 2 and checkpointer.idle, DEADLINE_S)
        await checkpointer.close()


async def test_what_a_reader_held_back_gets_checkpointed_once_it_lets_go(tmp_path: Path) -> None:
    """A PASSIVE checkpoint cannot copy frames newer than a reader's snapshot; those
    commits keep their time bound, and are copied once the reader is done."""
    async with _Checkpoints(tmp_path) as db:
        checkpointer = db.checkpointer(every=1_000_000, every_s=0.01)
        reader = sqlite3.connect(db.path, isolation_level=None)
        try:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM t").fetchone()  # a snapshot, held
            checkpointer.note(await db.write(1))
            await wait_until(lambda: checkpointer.runs >= 1, DEADLINE_S)
            result = checkpointer.last_result
            assert result is not None and result[2] < result[1]  # not all copied
        finally:
            reader.execute("COMMIT")
            reader.close()

        def all_copied() -> bool:
            result = checkpointer.last_result
            return result is not None and result[0] == 0 and result[1] == result[2]

        await wait_until(
            lambda: all_copied() and checkpointer.idle and not checkpointer.timed, DEADLINE_S
        )
        await checkpointer.close()


async def test_the_time_bound_during_a_checkpoint_leaves_the_rest_to_the_next(
    tmp_path: Path,
) -> None:
    async with _Checkpoints(tmp_path) as db:
        checkpointer = db.checkpointer(every=10, every_s=0.01)
        copying = threading.Event()
        held = db.copier.start(copying.wait)  # the copy phase waits
        checkpointer.note(await db.write(10))  # a round starts (by rows)
        checkpointer.note(await db.write(3))  # below the rows: timed
        await wait_until(lambda: not checkpointer.timed, DEADLINE_S)  # fired mid-round
        assert not checkpointer.idle
        copying.set()
        await held
        await wait_until(lambda: checkpointer.idle, DEADLINE_S)
        assert checkpointer.runs == 1  # its finish copied the 3 rows as well
        assert not checkpointer.timed
        checkpointer.note(await db.write(1))
        await wait_until(lambda: checkpointer.runs == 2 and checkpointer.idle, DEADLINE_S)
        await checkpointer.close()


async def test_closing_cancels_a_timed_checkpoint(tmp_path: Path) -> None:
    async with _Checkpoints(tmp_path) as db:
        checkpointer = db.checkpointer(every=1_000_000, every_s=3600.0)
        checkpointer.note(await db.write(1))
        assert checkpointer.timed
        await checkpointer.close()
        assert not checkpointer.timed and checkpointer.runs == 0


async def test_the_store_checkpoints_a_lone_commit_in_time(db_path: Path, clock: FakeClock) -> None:
    store = SQLiteStore(str(db_path), clock, retry_delay_for_tests, checkpoint_after_s=0.01)
    await store.open()
    try:
        checkpointer = store.checkpointer
        assert checkpointer is not None
        await store.submit_jobs([new_job(clock)])
        await wait_until(lambda: checkpointer.runs >= 1 and checkpointer.idle, DEADLINE_S)
    finally:
        await store.close()


async def test_a_point_read_that_would_wait_goes_to_the_reader_thread(
    sqlite_store: SQLiteStore, clock: FakeClock, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.get_ident()
    (outcome,) = await sqlite_store.submit_jobs([new_job(clock)])
    seen = Seen("query_only")
    seen.wrap(monkeypatch, sqlite_reads, "get_job")
    assert await sqlite_store.get_job(outcome.job.id) == outcome.job
    assert seen.calls == [(loop_thread, 1)]
    async with _other_process(HOLD_WAL_RECOVERY, db_path):
        task = asyncio.create_task(sqlite_store.get_job(outcome.job.id))
        # The loop's reader failed at once (SQLITE_BUSY_RECOVERY); the reader thread waits.
        await wait_until(lambda: len(seen.calls) == 3)
    assert await task == outcome.job
    assert seen.threads[1] == loop_thread
    assert seen.threads[2] != loop_thread
    # The index was rebuilt: the loop reads again, and writes go on.
    await sqlite_store.submit_jobs([new_job(clock)])
    assert await sqlite_store.get_job(outcome.job.id) == outcome.job
    assert seen.threads[-1] == loop_thread
