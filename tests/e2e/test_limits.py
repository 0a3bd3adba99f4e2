"""A fleet-wide limit with real processes: a limit of 2 holds across 3 bots of 4 slots
each, on SQLite with one coordinator and on PostgreSQL with two (the bots spread over
them). Overlap is read from the job views (started_at and finished_at, both set by the
coordinator); every wait polls the API up to a generous deadline.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from botfleet.clock import parse_rfc3339
from tests.support.processes import (
    Coordinator,
    Process,
    http_json,
    logs_on_failure,
    start_bot,
    start_coordinator,
    wait_until,
)

pytestmark = pytest.mark.e2e

DEADLINE_S = 90.0
JOBS = 16
NAP_S = 0.3
PLUGIN = """
import asyncio
from bot.jobs import op

@op("nap")
async def nap(job):
    await asyncio.sleep(float(job.payload["seconds"]))
    return {}
"""


@dataclass
class Rig:
    coordinators: list[Coordinator]

    def admin(self, method: str, path: str, body: Any = None, index: int = 0) -> Any:
        coordinator = self.coordinators[index % len(self.coordinators)]
        status, answer = http_json(coordinator.api + path, method, body, coordinator.admin_token)
        assert 200 <= status < 300, f"{method} {path}: HTTP {status} {answer}"
        return answer


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    if request.param == "postgres":
        db_url = request.getfixturevalue("pg_database")
        names = ["coordinator-1", "coordinator-2"]
    else:
        db_url, names = None, ["coordinator"]
    coordinators = [
        start_coordinator(tmp_path, name, db_url=db_url, extra_args=["--heartbeat-interval", "1"])
        for name in names
    ]
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "naps.py").write_text(PLUGIN)
    python_path = os.pathsep.join(filter(None, [str(plugins), os.environ.get("PYTHONPATH")]))
    env = {"BOT_PLUGINS": "naps", "PYTHONPATH": python_path, "MAX_CONCURRENCY": "4"}
    apis = [coordinator.api for coordinator in coordinators]
    bots: list[Process] = [
        start_bot(tmp_path, apis[index % len(apis) :] + apis[: index % len(apis)], f"bot-{index}",
                  env=env)
        for index in range(3)
    ]  # fmt: skip
    processes = [*(coordinator.process for coordinator in coordinators), *bots]
    try:
        with logs_on_failure(lambda: processes):
            yield Rig(coordinators)
    finally:
        for process in reversed(processes):
            process.stop()


def _most_at_once(spans: list[tuple[datetime, datetime]]) -> int:
    """The most spans [start, end) that hold at one instant."""
    return max(sum(1 for start, end in spans if start <= moment < end) for moment, _ in spans)


def test_a_limit_of_two_holds_across_the_fleet(rig: Rig) -> None:
    wait_until(lambda: len(rig.admin("GET", "/bots")["bots"]) == 3, DEADLINE_S, "3 bots")
    rig.admin("PUT", "/limits/pair", {"max_running": 2})
    job = {"op": "nap", "payload": {"seconds": NAP_S}, "limits": ["pair"], "max_attempts": 1}
    ids = rig.admin("POST", "/jobs/bulk", {"jobs": [job] * JOBS})["ids"]

    def all_succeeded() -> bool:
        return all(rig.admin("GET", f"/jobs/{job_id}")["state"] == "succeeded" for job_id in ids)

    wait_until(all_succeeded, DEADLINE_S, "every limited job succeeded")
    views = [rig.admin("GET", f"/jobs/{job_id}", index=i) for i, job_id in enumerate(ids)]
    spans = [(parse_rfc3339(v["started_at"]), parse_rfc3339(v["finished_at"])) for v in views]
    assert _most_at_once(spans) <= 2
    assert len({view["bot_id"] for view in views}) >= 2  # the fleet shared them
    (limit,) = rig.admin("GET", "/limits")["limits"]
    assert (limit["name"], limit["running"]) == ("pair", 0)
