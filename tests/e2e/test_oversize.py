"""Reports too large for the coordinator, with real processes.

- A handler returning a 2 MiB result against `--max-body-bytes 1048576`: the job ends
  `failed` at once, not retryable, with an error naming the result's size and the limit;
  it never runs again, and the bot goes on to the next job.
- A handler sending a 2 MiB progress message: the message is cut, the job ends.
- A bad `--max-body-bytes` stops the server with a message naming the flag.

The operations come from a plugin module written to tmp_path (BOT_PLUGINS).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from botfleet.processes import child_env, python_module
from tests.support.processes import (
    Coordinator,
    Process,
    logs_on_failure,
    start_bot,
    start_coordinator,
    wait_until,
)

pytestmark = pytest.mark.e2e

DEADLINE_S = 60.0
MIB = 1024 * 1024
TIMING = ["--bot-lease-ttl", "4", "--heartbeat-interval", "0.5", "--reaper-interval", "0.25"]
PLUGIN = """
from bot.jobs import op


@op("huge")
async def huge(job):
    return {"blob": "x" * (2 * 1024 * 1024)}


@op("chatty")
async def chatty(job):
    job.progress(0.5, "p" * (2 * 1024 * 1024))
    return {"said": "a lot"}
"""


class Rig:
    def __init__(self, workdir: Path, coordinator: Coordinator) -> None:
        self.workdir = workdir
        self.coordinator = coordinator
        self.bots: list[Process] = []

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        return self.coordinator.admin(method, path, body)

    def start_bot(self, name: str) -> Process:
        plugins = self.workdir / "plugins"
        plugins.mkdir(exist_ok=True)
        (plugins / "big_results.py").write_text(PLUGIN)
        python_path = os.pathsep.join(filter(None, [str(plugins), os.environ.get("PYTHONPATH")]))
        env = {"BOT_PLUGINS": "big_results", "PYTHONPATH": python_path}
        bot = start_bot(self.workdir, [self.coordinator.api], name, env=env)
        self.bots.append(bot)
        return bot

    def submit(self, op: str, payload: dict[str, Any] | None = None) -> str:
        job = {"op": op, "payload": payload or {}, "max_attempts": 3}
        job_id: str = self.admin("POST", "/jobs", job)["id"]
        return job_id

    def ended(self, job_id: str) -> dict[str, Any]:
        """The job's view once it has ended (the coordinator waits for it, up to 10 s)."""
        view: dict[str, Any] = {}

        def done() -> bool:
            nonlocal view
            view = self.admin("GET", f"/jobs/{job_id}?wait_ms=10000")
            return view["state"] in ("succeeded", "failed", "cancelled")

        wait_until(done, DEADLINE_S, f"job {job_id} to end")
        return view

    def processes(self) -> list[Process]:
        return [self.coordinator.process, *self.bots]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    coordinator = start_coordinator(tmp_path, extra_args=[*TIMING, "--max-body-bytes", str(MIB)])
    rig = Rig(tmp_path, coordinator)
    try:
        with logs_on_failure(rig.processes):
            yield rig
    finally:
        for bot in rig.bots:
            bot.stop()
        coordinator.process.stop()


def test_a_result_too_large_fails_its_job_and_the_bot_goes_on(rig: Rig) -> None:
    rig.start_bot("big")
    job_id = rig.submit("huge")

    view = rig.ended(job_id)

    assert view["state"] == "failed", view
    assert "too large" in view["error"]
    result_bytes = len('{"blob":""}') + 2 * MIB
    assert f"{result_bytes} bytes" in view["error"] and f"{MIB} bytes" in view["error"]
    assert view["attempt"] == 1  # failed for good: never handed out again
    following = rig.ended(rig.submit("sum", {"a": 2, "b": 3}))
    assert (following["state"], following["result"]) == ("succeeded", {"result": 5})
    assert rig.admin("GET", f"/jobs/{job_id}")["attempt"] == 1


def test_an_oversized_progress_message_never_hangs_the_job(rig: Rig) -> None:
    rig.start_bot("chatty")
    view = rig.ended(rig.submit("chatty"))
    assert (view["state"], view["result"]) == ("succeeded", {"said": "a lot"}), view
    following = rig.ended(rig.submit("sum", {"a": 1, "b": 1}))
    assert following["state"] == "succeeded"


@pytest.mark.parametrize("value", ["0", "-5", "abc"])
def test_a_bad_max_body_bytes_stops_the_server(tmp_path: Path, value: str) -> None:
    args = python_module(
        "coordinator", "--port", "0", "--state-dir", str(tmp_path), "--max-body-bytes", value
    )
    done = subprocess.run(
        args, env=child_env(), capture_output=True, text=True, timeout=DEADLINE_S, check=False
    )
    assert done.returncode == 2, done
    assert "--max-body-bytes" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
