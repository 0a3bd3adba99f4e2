"""What only the SQLite backend promises: its file, its threads, its error mapping."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from botfleet.clock import FakeClock
from coordinator.store import open_store
from coordinator.store.base import ClaimInput, StoreError
from coordinator.store.migrations import load_migrations
from coordinator.store.sqlite import SQLiteStore
from coordinator.store.sqlite.store import INLINE_MAX_SUBMIT
from tests.unit.store.support import (
    JOB_LEASE_TTL_S,
    RecordingListener,
    new_job,
    register,
    retry_delay_for_tests,
)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "sub" / "botfleet.db"


def _make(path: Path, clock: FakeClock) -> SQLiteStore:
    # No checkpoint on a timer: one could make a write the tests expect inline queue on
    # the writer thread.
    return SQLiteStore(str(path), clock, retry_delay_for_tests, checkpoint_after_s=3600.0)


def _query(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_constructor_does_no_io(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "botfleet.db"
    _make(path, clock)
    assert not path.exists()


def test_an_in_memory_database_is_refused(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="file path"):
        SQLiteStore(":memory:", clock, retry_delay_for_tests)


async def test_open_makes_a_wal_database_at_the_latest_version(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "botfleet.db"
    store = _make(path, clock)
    await store.open()
    try:
        assert _query(path, "PRAGMA journal_mode") == [("wal",)]
        latest = [(m.version,) for m in load_migrations("sqlite_migrations")]
        assert _query(path, "SELECT version FROM schema_version") == latest
    finally:
        await store.close()
    # Opening again applies nothing new.
    store = _make(path, clock)
    await store.open()
    await store.close()
    assert _query(path, "SELECT count(*) FROM schema_version") == [(len(latest),)]


async def test_open_store_builds_a_sqlite_store_from_a_url(db_path: Path, clock: FakeClock) -> None:
    store = open_store(f"sqlite:///{db_path}", clock, retry_delay_for_tests)
    assert isinstance(store, SQLiteStore)
    await store.open()
    await store.ping()
    await store.close()
    assert _query(db_path, "PRAGMA journal_mode") == [("wal",)]


async def test_a_database_from_a_newer_botfleet_is_refused(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "botfleet.db"
    store = _make(path, clock)
    await store.open()
    await store.close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version VALUES (99, 'future', 0)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        await _make(path, clock).open()


async def test_a_file_that_is_not_a_database_is_a_store_error(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "botfleet.db"
    path.write_bytes(b"this is not a database, just some text" * 100)
    with pytest.raises(StoreError):
        await _make(path, clock).open()


async def test_verbs_on_a_closed_store_are_store_errors(tmp_path: Path, clock: FakeClock) -> None:
    store = _make(tmp_path / "botfleet.db", clock)
    with pytest.raises(StoreError):
        await store.ping()
    await store.open()
    await store.close()
    with pytest.raises(StoreError):
        await store.get_job("job_x")
    with pytest.raises(StoreError):
        await store.submit_jobs([new_job(clock)])


async def test_many_concurrent_claims_hand_each_job_out_once(
    tmp_path: Path, clock: FakeClock
) -> None:
    store = _make(tmp_path / "botfleet.db", clock)
    await store.open()
    try:
        bots = [
            await register(
                store, clock, bot_key=f"host/{n}", instance_id=f"i{n}", max_concurrency=500
            )
            for n in range(5)
        ]
        await store.submit_jobs([new_job(clock) for _ in range(400)])
        claims = await asyncio.gather(
            *(
                store.claim_jobs(ClaimInput(bot.id, ["sum"], 7, JOB_LEASE_TTL_S))
                for _ in range(15)
                for bot in bots
            )
        )
        handed = [job.id for jobs in claims if jobs for job in jobs]
        assert len(handed) == len(set(handed)) == 400
    finally:
        await store.close()


class _BrokenListener:
    def __init__(self) -> None:
        self.calls = 0

    def jobs_available(self, operations: Sequence[str], count: int | None = None) -> None:
        self.calls += 1
        raise RuntimeError("listener bug")

    def jobs_finished(self, job_ids: Sequence[str]) -> None:
        self.calls += 1


async def test_a_broken_listener_is_logged_and_the_change_kept(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = _make(tmp_path / "botfleet.db", clock)
    await store.open()
    listener = _BrokenListener()
    store.set_listener(listener)
    try:
        with caplog.at_level(logging.ERROR, logger="coordinator.store.sqlite"):
            (outcome,) = await store.submit_jobs([new_job(clock)])
        assert listener.calls == 1
        assert "listener failed" in caplog.text
        assert await store.get_job(outcome.job.id) is not None
    finally:
        await store.close()


async def test_a_cancelled_caller_still_commits_and_notifies(
    tmp_path: Path, clock: FakeClock
) -> None:
    store = _make(tmp_path / "botfleet.db", clock)
    await store.open()
    listener = RecordingListener()
    store.set_listener(listener)
    # A bulk submit: it goes to the writer thread (a short one would run inline at once,
    # with no await point to cancel it at).
    bulk = [new_job(clock, idempotency_key=f"k{n}") for n in range(INLINE_MAX_SUBMIT + 1)]
    try:
        task = asyncio.create_task(store.submit_jobs(bulk))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The shielded write finishes on its own; wait for its notice.
        await listener.until(lambda: bool(listener.available))
        assert [list(ops) for ops in listener.available] == [["sum"]]
        (again,) = await store.submit_jobs([new_job(clock, idempotency_key="k0")])
        assert not again.created
        assert store.write_paths.thread == 1
    finally:
        await store.close()


async def test_job_counts_follow_every_transition(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "botfleet.db"
    store = _make(path, clock)
    await store.open()
    try:
        bot = await register(store, clock)
        ids = [o.job.id for o in await store.submit_jobs([new_job(clock) for _ in range(6)])]
        await store.claim_jobs(ClaimInput(bot.id, ["sum"], 4, JOB_LEASE_TTL_S))
        await store.cancel_job(ids[0])
        await store.retry_job(ids[0])
        clock.advance(JOB_LEASE_TTL_S + 1)
        await store.expire_leases()
        stats = await store.stats()
    finally:
        await store.close()
    counted = dict(
        _query(path, "SELECT state, count(*) FROM jobs GROUP BY state")  # type: ignore[arg-type]
    )
    assert {state: n for state, n in stats.jobs_by_state.items() if n} == counted
