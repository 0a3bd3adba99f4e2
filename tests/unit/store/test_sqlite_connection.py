"""The SQLite store's WAL checkpoints: off the event loop, in two phases, within their
row and time bounds. Real SQLite files."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from botfleet.clock import FakeClock
from coordinator.store.queries import load_queries
from coordinator.store.sqlite import SQLiteStore
from coordinator.store.sqlite import jobs as sqlite_jobs
from coordinator.store.sqlite.connection import Checkpointer, DatabaseThread
from tests.unit.store.sqlite_support import ROWS_PER_CHECKPOINT, Seen, until_checkpointed
from tests.unit.store.support import (
    new_job,
    retry_delay_for_tests,
)


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
        await until_checkpointed(checkpointer, lambda: checkpointer.runs >= 1 and checkpointer.idle)
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
        await until_checkpointed(
            checkpointer,
            lambda: checkpointer.runs == 1 and checkpointer.idle and not checkpointer.timed,
        )
        assert checkpointer.last_result is not None
        busy, wal_pages, copied = checkpointer.last_result
        assert busy == 0 and wal_pages == copied > 0
        checkpointer.note(await db.write(1))
        await until_checkpointed(checkpointer, lambda: checkpointer.runs == 2 and checkpointer.idle)
        await checkpointer.close()


async def test_a_late_note_of_an_older_commit_does_not_hide_a_newer_one(tmp_path: Path) -> None:
    """The store notes a commit made on the writer thread a loop turn late, possibly
    after a newer inline commit: the newer one still gets its checkpoint in time."""
    async with _Checkpoints(tmp_path) as db:
        checkpointer = db.checkpointer(every=1_000_000, every_s=0.01)
        checkpointer.note(await db.write(1))
        older = await db.write(1)  # committed, its note still to come
        await until_checkpointed(checkpointer, lambda: checkpointer.runs == 1 and checkpointer.idle)
        newer = await db.write(1)
        checkpointer.note(newer)
        checkpointer.note(older)
        await until_checkpointed(checkpointer, lambda: checkpointer.runs == 2 and checkpointer.idle)
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
            await until_checkpointed(checkpointer, lambda: checkpointer.runs >= 1)
            result = checkpointer.last_result
            assert result is not None and result[2] < result[1]  # not all copied
        finally:
            reader.execute("COMMIT")
            reader.close()

        def all_copied() -> bool:
            result = checkpointer.last_result
            return result is not None and result[0] == 0 and result[1] == result[2]

        await until_checkpointed(
            checkpointer, lambda: all_copied() and checkpointer.idle and not checkpointer.timed
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
        await until_checkpointed(checkpointer, lambda: not checkpointer.timed)  # fired mid-round
        assert not checkpointer.idle
        copying.set()
        await held
        await until_checkpointed(checkpointer, lambda: checkpointer.idle)
        assert checkpointer.runs == 1  # its finish copied the 3 rows as well
        assert not checkpointer.timed
        checkpointer.note(await db.write(1))
        await until_checkpointed(checkpointer, lambda: checkpointer.runs == 2 and checkpointer.idle)
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
        await until_checkpointed(checkpointer, lambda: checkpointer.runs >= 1 and checkpointer.idle)
    finally:
        await store.close()
