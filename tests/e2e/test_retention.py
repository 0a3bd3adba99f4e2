"""Retention and expiry with real processes: a coordinator keeping finished jobs and
offline bots two seconds, and a bot.

Finished jobs disappear (GET answers 404) while a running job and a queued one stay; a
queued job no bot can take ends `cancelled` with the error `expired` once its
`expires_in_ms` runs out; a bot that went offline is forgotten while its jobs keep its
id. Every wait polls the API up to a generous deadline; nothing sleeps a fixed time.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Callable, Iterator
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

DEADLINE_S = 60.0
RETAIN_S = 2
TIMING = [
    "--reaper-interval", "0.2", "--reaper-grace", "0",
    "--bot-lease-ttl", "4", "--heartbeat-interval", "0.5",
]  # fmt: skip
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
    workdir: Path
    coordinator: Coordinator
    bots: list[Process]

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return http_json(self.coordinator.api + path, method, body, self.coordinator.admin_token)

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = self.call(method, path, body)
        assert 200 <= status < 300, f"{method} {path}: HTTP {status} {answer}"
        return answer

    def submit(self, op: str, payload: dict[str, Any], **fields: Any) -> str:
        job_id: str = self.admin("POST", "/jobs", {"op": op, "payload": payload, **fields})["id"]
        return job_id

    def state(self, job_id: str) -> str | None:
        """The job's state; None once it is gone (404)."""
        status, view = self.call("GET", f"/jobs/{job_id}")
        if status == 404:
            return None
        assert status == 200, view
        return str(view["state"])

    def start_bot(self, name: str) -> Process:
        plugins = self.workdir / "plugins"
        plugins.mkdir(exist_ok=True)
        (plugins / "naps.py").write_text(PLUGIN)
        python_path = os.pathsep.join(filter(None, [str(plugins), os.environ.get("PYTHONPATH")]))
        env = {"BOT_PLUGINS": "naps", "PYTHONPATH": python_path, "BOT_DRAIN_GRACE_SEC": "1"}
        bot = start_bot(self.workdir, [self.coordinator.api], name, env=env)
        self.bots.append(bot)
        return bot

    def bot_id(self, name: str) -> str | None:
        for bot in self.admin("GET", "/bots")["bots"]:
            if bot["name"] == name:
                return str(bot["id"])
        return None


@pytest.fixture
def rigs(tmp_path: Path) -> Iterator[Callable[[list[str]], Rig]]:
    """Starts a coordinator with these retention flags (and short timings), and its rig."""
    started: list[Rig] = []

    def start(retention: list[str]) -> Rig:
        workdir = tmp_path / f"rig-{len(started)}"
        workdir.mkdir()
        coordinator = start_coordinator(workdir, extra_args=[*retention, *TIMING])
        started.append(Rig(workdir, coordinator, []))
        return started[-1]

    def processes() -> list[Process]:
        return [p for rig in started for p in (rig.coordinator.process, *rig.bots)]

    try:
        with logs_on_failure(processes):
            yield start
    finally:
        for process in reversed(processes()):
            process.stop()


@pytest.fixture
def rig(rigs: Callable[[list[str]], Rig]) -> Rig:
    return rigs(["--retain-finished", f"{RETAIN_S}s", "--retain-bots", f"{RETAIN_S}s"])


def test_an_expired_queued_job_ends_cancelled_with_expired(rig: Rig) -> None:
    job_id = rig.submit("nobody_runs_this", {}, expires_in_ms=500)
    view = rig.admin("GET", f"/jobs/{job_id}")
    assert view["state"] == "queued" and view["expires_at"] is not None

    wait_until(lambda: rig.state(job_id) != "queued", DEADLINE_S, "the job expired")

    view = rig.admin("GET", f"/jobs/{job_id}")
    assert (view["state"], view["error"], view["attempt"]) == ("cancelled", "expired", 0)


def test_finished_jobs_go_and_running_and_queued_ones_stay(rig: Rig) -> None:
    rig.start_bot("worker")
    wait_until(lambda: rig.bot_id("worker") is not None, DEADLINE_S, "the bot registered")
    running = rig.submit("nap", {"seconds": 600})
    queued = rig.submit("nobody_runs_this", {})
    finished = [rig.submit("sum", {"a": i, "b": 1}) for i in range(3)]
    wait_until(lambda: rig.state(running) == "running", DEADLINE_S, "the nap running")
    wait_until(
        lambda: all(rig.state(job_id) in ("succeeded", None) for job_id in finished),
        DEADLINE_S,
        "the sums done",
    )

    wait_until(
        lambda: all(rig.state(job_id) is None for job_id in finished),
        DEADLINE_S,
        "the finished jobs deleted",
    )

    assert (rig.state(running), rig.state(queued)) == ("running", "queued")
    metrics = rig.coordinator.url + "/metrics"
    assert "botfleet_jobs_deleted_total 3.0" in _text(metrics)


def test_an_offline_bot_is_forgotten_and_its_jobs_keep_its_id(
    rigs: Callable[[list[str]], Rig],
) -> None:
    rig = rigs(["--retain-finished", "never", "--retain-bots", f"{RETAIN_S}s"])
    bot = rig.start_bot("passing")
    wait_until(lambda: rig.bot_id("passing") is not None, DEADLINE_S, "the bot registered")
    bot_id = rig.bot_id("passing")
    job_id = rig.submit("sum", {"a": 1, "b": 2})
    wait_until(lambda: rig.state(job_id) == "succeeded", DEADLINE_S, "the sum done")

    assert bot.stop() == 0  # a clean shutdown deregisters: the bot is offline at once

    wait_until(
        lambda: rig.call("GET", f"/bots/{bot_id}")[0] == 404, DEADLINE_S, "the bot forgotten"
    )
    view = rig.admin("GET", f"/jobs/{job_id}")
    assert (view["state"], view["bot_id"]) == ("succeeded", bot_id)


def _text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return str(response.read().decode())
