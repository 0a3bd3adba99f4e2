"""The SQLite database and its WAL and shared-memory files are private (0600), real files."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from botfleet.clock import FakeClock
from coordinator.store import open_store
from tests.unit.store.support import new_job, retry_delay_for_tests


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The common 022 umask, under which files are made 0644 unless asked otherwise."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("usual_umask")
async def test_database_wal_and_shm_are_0600_after_writes(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "botfleet.db"
    store = open_store(f"sqlite:///{path}", FakeClock(), retry_delay_for_tests)
    await store.open()
    try:
        await store.submit_jobs([new_job(FakeClock(), payload={"a": n}) for n in range(50)])
        wal, shm = path.with_name("botfleet.db-wal"), path.with_name("botfleet.db-shm")
        assert wal.stat().st_size > 0  # written to, not just created
        assert {p.name: mode(p) for p in (path, wal, shm)} == {
            "botfleet.db": 0o600,
            "botfleet.db-wal": 0o600,
            "botfleet.db-shm": 0o600,
        }
        assert mode(path.parent) == 0o700  # the folder made for it
    finally:
        await store.close()


@pytest.mark.usefixtures("usual_umask")
async def test_files_an_older_version_left_wider_are_narrowed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "botfleet.db"
    store = open_store(f"sqlite:///{path}", FakeClock(), retry_delay_for_tests)
    await store.open()
    await store.submit_jobs([new_job(FakeClock())])
    await store.close()
    leftovers = [path, path.with_name("botfleet.db-wal"), path.with_name("botfleet.db-shm")]
    for file in leftovers:
        file.touch()
        file.chmod(0o644)

    store = open_store(f"sqlite:///{path}", FakeClock(), retry_delay_for_tests)
    with caplog.at_level(logging.WARNING):
        await store.open()
    try:
        assert {file.name: mode(file) for file in leftovers} == {
            "botfleet.db": 0o600,
            "botfleet.db-wal": 0o600,
            "botfleet.db-shm": 0o600,
        }
        narrowed = [r.getMessage() for r in caplog.records if "narrowed" in r.getMessage()]
        assert any(str(path) in line and "0644" in line for line in narrowed), narrowed
        assert len(await store.submit_jobs([new_job(FakeClock())])) == 1  # still works
    finally:
        await store.close()
