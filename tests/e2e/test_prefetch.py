"""Prefetch with real processes: a coordinator and `python -m bot` bots whose plugin
(written to tmp_path, BOT_PLUGINS) has `nap` (sleeps `seconds`) and `gated` (runs until a
file exists, so a test decides when a slot frees up).

- A bot SIGKILLed while it holds 200 prefetched jobs loses none: their leases run out,
  another bot runs them, every one ends succeeded, and each job's attempts list shows
  exactly the attempts it was charged.
- A long job prefetched behind a busy slot goes back to the queue after the hold time
  and runs on the idle bot while the busy one's slot is still taken.
- An operation whose jobs turn long is prefetched no more.

Every wait polls the API or the bot's metrics up to a generous deadline.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import (
    Coordinator,
    Process,
    free_port,
    start_bot,
    start_coordinator,
    stopped_after,
    wait_until,
)

pytestmark = pytest.mark.e2e

DEADLINE_S = 120.0
PLUGIN = """
import asyncio, os
from bot.jobs import op

@op("nap")
async def nap(job):
    await asyncio.sleep(float(job.payload.get("seconds", 0)))
    return {"napped": job.payload.get("seconds", 0)}

@op("gated")
async def gated(job):
    # Polls for the gate file (the test opens the gate by creating it).
    while not os.path.exists(job.payload["gate"]):
        await asyncio.sleep(0.02)
    return {}
"""
# Short leases, so a killed bot's jobs come back within seconds.
SHORT_LEASES = [
    "--job-lease-ttl", "3", "--bot-lease-ttl", "3", "--heartbeat-interval", "1",
    "--reaper-interval", "0.25",
]  # fmt: skip


@dataclass
class Rig:
    tmp_path: Path
    coordinator: Coordinator
    bots: list[Process] = field(default_factory=list)

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        return self.coordinator.admin(method, path, body)

    def bot(self, name: str, **env: str) -> Process:
        plugins = self.tmp_path / "plugins"
        plugins.mkdir(exist_ok=True)
        (plugins / "prefetch_ops.py").write_text(PLUGIN)
        python_path = os.pathsep.join(filter(None, [str(plugins), os.environ.get("PYTHONPATH")]))
        bot_env = {"BOT_PLUGINS": "prefetch_ops", "PYTHONPATH": python_path, **env}
        process = start_bot(self.tmp_path, [self.coordinator.api], name, env=bot_env)
        self.bots.append(process)
        wait_until(lambda: self.bot_id(name) is not None, DEADLINE_S, f"bot {name} online")
        return process

    def bot_id(self, name: str) -> str | None:
        for bot in self.admin("GET", "/bots")["bots"]:
            if bot["name"] == name and bot["state"] == "online":
                return str(bot["id"])
        return None

    def holding(self, name: str) -> int:
        """How many jobs the coordinator has under this bot (running and held)."""
        bot_id = self.bot_id(name)
        return 0 if bot_id is None else len(self.admin("GET", f"/bots/{bot_id}")["running"])

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self.admin("GET", f"/jobs/{job_id}"))

    def attempts(self, job_id: str) -> list[dict[str, Any]]:
        return list(self.admin("GET", f"/jobs/{job_id}/attempts")["attempts"])

    def submit(self, jobs: list[dict[str, Any]]) -> list[str]:
        return list(self.admin("POST", "/jobs/bulk", {"jobs": jobs})["ids"])

    def succeeded(self) -> int:
        return int(self.admin("GET", "/stats")["jobs"].get("succeeded", 0))


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    coordinator = start_coordinator(tmp_path, extra_args=SHORT_LEASES)
    rig = Rig(tmp_path, coordinator)
    with stopped_after(coordinator, rig.bots):
        yield rig


def bot_metric(port: int, name: str, **labels: str) -> float:
    status, text = _get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200, text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode()


def test_a_bot_killed_holding_200_prefetched_jobs_loses_none(rig: Rig) -> None:
    gate = rig.tmp_path / "gate"
    holder = rig.bot(
        "holder", MAX_CONCURRENCY="2", BOT_PREFETCH="200", BOT_PREFETCH_HOLD_MS="600000"
    )
    # Two jobs that keep the slots busy, then 200 that can only wait in the buffer.
    ids = rig.submit(
        [{"op": "gated", "payload": {"gate": str(gate)}}] * 2
        + [{"op": "nap", "payload": {"seconds": 0}}] * 200
    )
    naps = ids[2:]
    wait_until(lambda: rig.holding("holder") == 202, DEADLINE_S, "202 jobs under the holder")
    holder.kill()

    rig.bot("rescuer")
    gate.touch()
    wait_until(lambda: rig.succeeded() == 202, DEADLINE_S, "every job succeeded")
    for job_id in naps:
        view = rig.job(job_id)
        attempts = rig.attempts(job_id)
        # The attempt the killed bot held ran out unreported, so it was charged; the job
        # shows it, and the one that succeeded: no phantom, none hidden.
        assert view["attempts_used"] == len(attempts) == 2, (view, attempts)
        assert attempts[0]["outcome"] in ("expired", "released")
        assert attempts[-1]["outcome"] == "succeeded"


def test_a_long_job_held_behind_a_busy_slot_runs_on_an_idle_bot(rig: Rig) -> None:
    gate = rig.tmp_path / "gate"
    # One slot, and a hold time long enough to see the job held from outside.
    rig.bot("busy", MAX_CONCURRENCY="1", BOT_PREFETCH="5", BOT_PREFETCH_HOLD_MS="5000")
    blocking, long = rig.submit(
        [{"op": "gated", "payload": {"gate": str(gate)}}, {"op": "nap", "payload": {"seconds": 2}}]
    )
    wait_until(lambda: rig.holding("busy") == 2, DEADLINE_S, "the long job held behind")
    rig.bot("idle", MAX_CONCURRENCY="1", BOT_PREFETCH="0")
    try:
        wait_until(lambda: rig.job(long)["state"] == "succeeded", DEADLINE_S, "the long job")
        # It ran on the idle bot while the busy bot's only slot was still taken.
        assert rig.job(long)["bot_id"] == rig.bot_id("idle")
        assert rig.job(blocking)["state"] == "running"
        (attempt,) = rig.attempts(long)  # the busy bot's hold is not an attempt
        assert attempt["outcome"] == "succeeded" and rig.job(long)["attempts_used"] == 1
    finally:
        gate.touch()
    wait_until(lambda: rig.job(blocking)["state"] == "succeeded", DEADLINE_S, "unblocked")
    status, text = _get(rig.coordinator.url + "/metrics")
    assert status == 200 and 'botfleet_jobs_released_total{op="nap"} 1.0' in text


def test_an_operation_that_turns_long_is_prefetched_no_more(rig: Rig) -> None:
    port = free_port()
    rig.bot("turning", MAX_CONCURRENCY="2", BOT_METRICS_PORT=str(port))

    def prefetched() -> float:
        return bot_metric(port, "botfleet_bot_prefetched_total", op="nap")

    # Short naps: once a few ran, claims go beyond the free slots.
    rig.submit([{"op": "nap", "payload": {"seconds": 0}}] * 300)
    wait_until(lambda: rig.succeeded() == 300, DEADLINE_S, "the short naps")
    assert prefetched() > 0
    # One long nap: the operation is long from then on...
    rig.submit([{"op": "nap", "payload": {"seconds": 1}}])
    wait_until(lambda: rig.succeeded() == 301, DEADLINE_S, "the first long nap")
    before = prefetched()
    # ...so its next jobs come no more than the free slots at a time.
    rig.submit([{"op": "nap", "payload": {"seconds": 0.3}}] * 8)
    wait_until(lambda: rig.succeeded() == 309, DEADLINE_S, "the longer naps")
    assert prefetched() == before
    assert bot_metric(port, "botfleet_bot_prefetch_released_total") == 0
