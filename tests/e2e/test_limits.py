"""A fleet-wide limit with real processes: a limit of 2 holds across 3 bots of 4 slots
each, on SQLite with one coordinator and on PostgreSQL with two (the bots spread over
them). The handlers themselves keep a ledger (a file under a lock, shared by the three
bot processes) of how many run at once: a job runs only between its claim and its
report, so more than 2 there would be more than 2 running under the limit. (The job
views' timestamps are each transaction's start time, which a claim waiting on the
limit's lock can have from before the report that made room.) Every wait polls the API
up to a generous deadline.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

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
import asyncio, fcntl, json, os
from bot.jobs import op

def count(step):
    with open(os.environ["NAP_LEDGER"], "a+") as ledger:
        fcntl.flock(ledger, fcntl.LOCK_EX)
        ledger.seek(0)
        state = json.loads(ledger.read() or '{"now": 0, "most": 0, "runs": 0}')
        state["now"] += step
        state["most"] = max(state["most"], state["now"])
        state["runs"] += step > 0
        ledger.seek(0)
        ledger.truncate()
        ledger.write(json.dumps(state))

@op("nap")
async def nap(job):
    count(+1)
    try:
        await asyncio.sleep(float(job.payload["seconds"]))
    finally:
        count(-1)
    return {}
"""


@dataclass
class Rig:
    coordinators: list[Coordinator]
    ledger: Path  # {"now", "most", "runs"}: handlers running now, at most, and in all

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
    ledger = tmp_path / "ledger.json"
    env = {
        "BOT_PLUGINS": "naps",
        "PYTHONPATH": python_path,
        "MAX_CONCURRENCY": "4",
        "NAP_LEDGER": str(ledger),
    }
    apis = [coordinator.api for coordinator in coordinators]
    bots: list[Process] = [
        start_bot(tmp_path, apis[index % len(apis) :] + apis[: index % len(apis)], f"bot-{index}",
                  env=env)
        for index in range(3)
    ]  # fmt: skip
    processes = [*(coordinator.process for coordinator in coordinators), *bots]
    try:
        with logs_on_failure(lambda: processes):
            yield Rig(coordinators, ledger)
    finally:
        for process in reversed(processes):
            process.stop()


def test_a_limit_of_two_holds_across_the_fleet(rig: Rig) -> None:
    wait_until(lambda: len(rig.admin("GET", "/bots")["bots"]) == 3, DEADLINE_S, "3 bots")
    rig.admin("PUT", "/limits/pair", {"max_running": 2})
    job = {"op": "nap", "payload": {"seconds": NAP_S}, "limits": ["pair"], "max_attempts": 1}
    ids = rig.admin("POST", "/jobs/bulk", {"jobs": [job] * JOBS})["ids"]

    def all_succeeded() -> bool:
        return all(rig.admin("GET", f"/jobs/{job_id}")["state"] == "succeeded" for job_id in ids)

    wait_until(all_succeeded, DEADLINE_S, "every limited job succeeded")
    ledger = json.loads(rig.ledger.read_text())
    assert ledger["runs"] == JOBS and ledger["now"] == 0
    assert 1 <= ledger["most"] <= 2  # never more than the limit, across 12 slots
    (limit,) = rig.admin("GET", "/limits")["limits"]
    assert (limit["name"], limit["running"]) == ("pair", 0)
