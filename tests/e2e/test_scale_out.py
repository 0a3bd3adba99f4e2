"""Two coordinators on one PostgreSQL, four bots spread over them, one coordinator killed.

Each test gets its own database (`pg_database`, tests/e2e/conftest.py). Without a
reachable PostgreSQL the test skips, unless BOTFLEET_REQUIRE_POSTGRES=1 (CI), where it
fails.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.support.processes import Coordinator, Process, start_bot, start_coordinator

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

JOBS = 5_000
KILL_AFTER_SUCCEEDED = 1_500  # about a third of the way
DEADLINE_S = 90.0
# Short leases, so the jobs a killed coordinator handed out (and whose answer was lost)
# come back quickly; the bots heartbeat every bot_lease_ttl / 4 = 1.5 s.
COORDINATOR_ARGS = ["--job-lease-ttl", "4", "--bot-lease-ttl", "6", "--reaper-interval", "0.25"]
BOT_ENV = {"MAX_CONCURRENCY": "20", "MIN_BACKOFF_MS": "50", "MAX_BACKOFF_MS": "1000"}


@pytest.fixture
def fleet(tmp_path: Path, pg_database: str) -> Iterator[tuple[list[Coordinator], list[Process]]]:
    """Two coordinators on the database; four bots, two preferring each coordinator."""
    coordinators: list[Coordinator] = []
    bots: list[Process] = []
    try:
        for name in ("coordinator-1", "coordinator-2"):
            coordinators.append(
                start_coordinator(tmp_path, name, db_url=pg_database, extra_args=COORDINATOR_ARGS)
            )
        first, second = (coordinator.api for coordinator in coordinators)
        for index in range(4):
            servers = [first, second] if index % 2 == 0 else [second, first]
            bots.append(start_bot(tmp_path, servers, f"bot-{index}", env=BOT_ENV))
        yield coordinators, bots
    finally:
        for process in [*bots, *(coordinator.process for coordinator in coordinators)]:
            process.stop()


class Admin:
    """The producer API of one coordinator."""

    def __init__(self, session: aiohttp.ClientSession, coordinator: Coordinator) -> None:
        self._session = session
        self._coordinator = coordinator

    async def submit_bulk(self, jobs: list[dict[str, Any]]) -> list[str]:
        async with self._session.post(
            f"{self._coordinator.api}/jobs/bulk",
            json={"jobs": jobs},
            headers=self._coordinator.admin_headers,
        ) as response:
            assert response.status == 201, await response.text()
            ids: list[str] = (await response.json())["ids"]
            return ids

    async def jobs_by_state(self) -> dict[str, int]:
        async with self._session.get(
            f"{self._coordinator.api}/stats", headers=self._coordinator.admin_headers
        ) as response:
            assert response.status == 200, await response.text()
            counts: dict[str, int] = (await response.json())["jobs"]
            return counts


async def wait_for_succeeded(admin: Admin, count: int, logs: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        counts = await admin.jobs_by_state()
        assert counts.get("failed", 0) == 0, counts
        if counts.get("succeeded", 0) >= count:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"only {counts} after {DEADLINE_S:.0f} s; logs in {logs}")
        await asyncio.sleep(0.05)


async def test_a_coordinator_killed_mid_run_loses_nothing_and_leases_never_overlap(
    fleet: tuple[list[Coordinator], list[Process]], pg_database: str, tmp_path: Path
) -> None:
    (doomed, survivor), bots = fleet
    payloads = [{"a": i, "b": 3 * i + 1} for i in range(JOBS)]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        admins = [Admin(session, doomed), Admin(session, survivor)]
        for start in range(0, JOBS, 1000):
            chunk = [{"op": "sum", "payload": p} for p in payloads[start : start + 1000]]
            await admins[(start // 1000) % 2].submit_bulk(chunk)

        await wait_for_succeeded(admins[1], KILL_AFTER_SUCCEEDED, str(tmp_path))
        doomed.process.kill()  # SIGKILL, in the middle of claims and reports
        await wait_for_succeeded(admins[1], JOBS, str(tmp_path))

    assert all(bot.alive() for bot in bots), "a bot died when its coordinator did"
    jobs, attempts = await _read_database(pg_database)
    assert len(jobs) == JOBS
    wrong = [
        job
        for job in jobs
        if job["state"] != "succeeded"
        or job["result"] != {"result": job["payload"]["a"] + job["payload"]["b"]}
    ]
    assert not wrong, wrong[:5]
    assert _overlapping_leases(attempts) == []
    assert all(attempt["ended_at"] is not None for attempt in attempts)


async def _read_database(dsn: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    connection = await asyncpg.connect(dsn)
    try:
        # Without the store's codec, json columns arrive as text.
        jobs = await connection.fetch("SELECT id, state, payload, result FROM jobs")
        attempts = await connection.fetch(
            "SELECT job_id, attempt, claimed_at, lease_until, ended_at FROM attempts "
            "ORDER BY job_id, claimed_at, attempt"
        )
    finally:
        await connection.close()
    decoded = [
        {
            "id": row["id"],
            "state": row["state"],
            "payload": json.loads(row["payload"]),
            "result": None if row["result"] is None else json.loads(row["result"]),
        }
        for row in jobs
    ]
    return decoded, [dict(row) for row in attempts]


def _overlapping_leases(attempts: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    """Pairs of attempts of one job whose [claimed_at, ended_at or lease_until) overlap."""
    overlaps: list[tuple[str, int, int]] = []
    previous: dict[str, tuple[int, datetime]] = {}
    for attempt in attempts:  # by job, then by claimed_at
        job_id = attempt["job_id"]
        end = attempt["ended_at"] or attempt["lease_until"]
        if job_id in previous:
            earlier, earlier_end = previous[job_id]
            if attempt["claimed_at"] < earlier_end:
                overlaps.append((job_id, earlier, attempt["attempt"]))
        previous[job_id] = (attempt["attempt"], end)
    return overlaps
