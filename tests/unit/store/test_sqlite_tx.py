"""Where the SQLite store runs its transactions: short writes inline on the event loop
while the writer thread is idle, everything else (and anything that would wait for a
lock) on the threads. Real SQLite files; the verbs are wrapped only to see which thread
ran them."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from botfleet.clock import FakeClock
from coordinator.store.base import ClaimInput, ReportInput, ReportOutcome, StoreError
from coordinator.store.sqlite import SQLiteStore
from coordinator.store.sqlite import jobs as sqlite_jobs
from coordinator.store.sqlite import leases as sqlite_leases
from coordinator.store.sqlite import reads as sqlite_reads
from coordinator.store.sqlite import reports as sqlite_reports
from coordinator.store.sqlite.store import INLINE_MAX_SUBMIT
from coordinator.store.sqlite.tx import Tx, WritePaths
from tests.unit.store.sqlite_support import DEADLINE_S, Seen
from tests.unit.store.support import (
    JOB_LEASE_TTL_S,
    new_job,
    register,
)

HOLD_WRITE_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""


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
    assert await asyncio.to_thread(entered.wait, DEADLINE_S)
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
        await asyncio.sleep(0)  # a yield: the submit has had its first turn
        # The inline BEGIN IMMEDIATE failed at once; the writer thread now waits.
        assert sqlite_store.write_paths.busy == 1
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
        await seen.until_called(3)
    assert await task == outcome.job
    assert seen.threads[1] == loop_thread
    assert seen.threads[2] != loop_thread
    # The index was rebuilt: the loop reads again, and writes go on.
    await sqlite_store.submit_jobs([new_job(clock)])
    assert await sqlite_store.get_job(outcome.job.id) == outcome.job
    assert seen.threads[-1] == loop_thread
