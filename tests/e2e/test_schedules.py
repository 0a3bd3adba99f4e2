"""A 1-second schedule on two coordinators sharing PostgreSQL, one SIGKILLed mid-way:
one job per second, before and after the kill.

The schedule is added with the command line. What is checked, from the database:
- no due time has two jobs, and every job's due time (its run_at) is on the schedule's
  beat (a whole number of seconds after the first);
- between the first job and the last, every due time has its job, except those inside
  the kill window: from 1 s before the SIGKILL (a firing transaction of the killed
  coordinator may have been cut off) to KILL_ALLOWANCE_S after it (the survivor looks at
  least once a second, and a firing cut off is retried by it). Due times missed inside
  that window make one catch-up job, so at most KILL_ALLOWANCE_S + 1 of them go without.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from tests.support.processes import Coordinator, start_coordinator

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

JOBS_BEFORE_KILL = 4
JOBS_AFTER_KILL = 6
KILL_ALLOWANCE_S = 3.0
DEADLINE_S = 60.0


@pytest.fixture
def coordinators(tmp_path: Path, pg_database: str) -> Iterator[list[Coordinator]]:
    started: list[Coordinator] = []
    try:
        for name in ("coordinator-1", "coordinator-2"):
            started.append(start_coordinator(tmp_path, name, db_url=pg_database))
        yield started
    finally:
        for coordinator in started:
            coordinator.process.stop()


async def due_times(dsn: str) -> list[datetime]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT run_at FROM jobs WHERE submitted_by = 'schedule:tick' ORDER BY run_at"
        )
    finally:
        await connection.close()
    return [row["run_at"] for row in rows]


async def wait_for_jobs(dsn: str, count: int, logs: Path) -> list[datetime]:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        found = await due_times(dsn)
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(found)} scheduled jobs after {DEADLINE_S:.0f} s; {logs}")
        await asyncio.sleep(0.1)


async def test_a_one_second_schedule_makes_one_job_per_second_through_a_kill(
    coordinators: list[Coordinator], pg_database: str, tmp_path: Path
) -> None:
    doomed, survivor = coordinators
    doomed.botfleet("schedules", "add", "tick", "--every", "1s", "noop", "n=1")
    listed = survivor.botfleet("schedules")
    assert "tick" in listed and "every 1s" in listed

    before = await wait_for_jobs(pg_database, JOBS_BEFORE_KILL, tmp_path)
    doomed.process.kill()  # SIGKILL
    killed_at = datetime.now(UTC)
    await wait_for_jobs(pg_database, len(before) + JOBS_AFTER_KILL, tmp_path)
    survivor.process.stop()
    due = await due_times(pg_database)

    twice = [moment for moment, n in Counter(due).items() if n > 1]
    assert twice == [], f"due times with two jobs: {twice}"
    first = due[0]
    offsets = [(moment - first) / timedelta(seconds=1) for moment in due]
    assert all(offset == round(offset) for offset in offsets), offsets
    window_start = killed_at - timedelta(seconds=1)
    window_end = killed_at + timedelta(seconds=KILL_ALLOWANCE_S)
    present = {round(offset) for offset in offsets}
    missing = [
        first + timedelta(seconds=k) for k in range(round(offsets[-1]) + 1) if k not in present
    ]
    outside = [moment for moment in missing if not window_start <= moment <= window_end]
    assert outside == [], f"due times without a job outside the kill window: {outside}"
    assert len(missing) <= KILL_ALLOWANCE_S + 1
    assert len(due) >= JOBS_BEFORE_KILL + JOBS_AFTER_KILL
