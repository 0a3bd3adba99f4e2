"""Job logs and attempts with real processes: a coordinator, a `python -m bot` whose
plugin (written to tmp_path, BOT_PLUGINS) logs, and `botfleet logs --follow` following a
job live, as an operator runs it."""

from __future__ import annotations

import os
import subprocess
import sys
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
LINES = 1000
SECRET = "hunter2-very-secret"
PLUGIN = f"""
import asyncio
import logging
import os
from pathlib import Path

from bot.jobs import op

log = logging.getLogger("chatter")


@op("chatter")
async def chatter(job):
    gate = Path(job.payload["gate"])
    for n in range({LINES}):
        if n == {LINES} // 2:
            while not gate.exists():  # the test has seen the first half, live
                await asyncio.sleep(0.01)
        if n % 2:
            log.info("line %04d", n)
        else:
            job.log(f"line {{n:04d}}")
        await asyncio.sleep(0.002)
    job.log("the secret is " + os.environ["MY_SECRET"])
    return {{"lines": {LINES}}}


@op("flaky")
def flaky(job):  # a plain handler, in a thread: its log goes to its own job too
    log.warning("trying attempt %d", job.attempt)
    raise RuntimeError(f"attempt {{job.attempt}} broke")
"""


def operator_env(coordinator: Coordinator) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOTFLEET_", "BOT_"))}
    env.update(
        BOTFLEET_SERVER=coordinator.url,
        BOTFLEET_ADMIN_TOKEN=coordinator.admin_token,
        COLUMNS="200",
    )
    return env


@pytest.fixture
def fleet(tmp_path: Path) -> Any:
    coordinator = start_coordinator(tmp_path)
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "chatty.py").write_text(PLUGIN)
    python_path = os.pathsep.join(filter(None, [str(plugins), os.environ.get("PYTHONPATH")]))
    bot = start_bot(
        tmp_path,
        [coordinator.api],
        "logger",
        env={
            "BOT_PLUGINS": "chatty",
            "PYTHONPATH": python_path,
            "MY_SECRET": SECRET,
            "BOT_REDACT": "MY_SECRET",
        },
    )
    processes: list[Process] = [coordinator.process, bot]
    try:
        with logs_on_failure(lambda: processes):
            yield coordinator
    finally:
        bot.stop()
        coordinator.process.stop()


def submit(coordinator: Coordinator, op: str, payload: dict[str, Any], **extra: Any) -> str:
    job_id: str = coordinator.admin("POST", "/jobs", {"op": op, "payload": payload, **extra})["id"]
    return job_id


def test_a_handler_logging_1000_lines_is_followed_live_to_its_end(
    fleet: Coordinator, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    job_id = submit(fleet, "chatter", {"gate": str(gate)})
    follower = subprocess.Popen(
        [sys.executable, "-m", "botfleet", "logs", job_id, "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=operator_env(fleet),
    )
    try:
        assert follower.stdout is not None
        seen: list[str] = []
        while len(seen) < LINES // 2:
            line = follower.stdout.readline()
            assert line, f"the follower ended early: {follower.wait(DEADLINE_S)}"
            seen.append(line)
        # Half the lines, while the job cannot end before the gate opens: followed live.
        assert fleet.admin("GET", f"/jobs/{job_id}")["state"] == "running"
        gate.touch()
        rest, err = follower.communicate(timeout=DEADLINE_S)
    finally:
        follower.kill()
    assert follower.returncode == 0, err
    printed = [line for line in (seen + rest.splitlines(keepends=True)) if line.strip()]
    texts = [line.rstrip("\n").split("#1 ", 1)[1] for line in printed]
    assert texts[:LINES] == [f"line {n:04d}" for n in range(LINES)]
    assert texts[LINES:] == ["the secret is [REDACTED]"]
    assert SECRET not in rest
    levels = {line.split()[1] for line in printed}
    assert levels == {"INFO"}
    assert fleet.admin("GET", f"/jobs/{job_id}")["state"] == "succeeded"


def test_a_job_retried_twice_shows_three_attempts_with_their_errors(fleet: Coordinator) -> None:
    job_id = submit(fleet, "flaky", {}, max_attempts=3)

    def failed() -> bool:
        return bool(fleet.admin("GET", f"/jobs/{job_id}")["state"] == "failed")

    wait_until(failed, DEADLINE_S, f"job {job_id} to fail three times")
    attempts = fleet.admin("GET", f"/jobs/{job_id}/attempts")["attempts"]
    assert [(a["attempt"], a["outcome"], a["error"]) for a in attempts] == [
        (n, "failed", f"RuntimeError: attempt {n} broke") for n in (1, 2, 3)
    ]
    shown = fleet.botfleet("job", job_id)
    for n in (1, 2, 3):
        assert f"RuntimeError: attempt {n} broke" in shown, shown

    def all_lines_in() -> bool:
        status, page = http_json(f"{fleet.api}/jobs/{job_id}/logs", token=fleet.admin_token)
        return status == 200 and sum("trying" in x["text"] for x in page["lines"]) == 3

    wait_until(all_lines_in, DEADLINE_S, "the three attempts' lines")
    done = subprocess.run(
        [sys.executable, "-m", "botfleet", "logs", job_id, "--follow"],
        capture_output=True,
        text=True,
        env=operator_env(fleet),
        timeout=DEADLINE_S,
    )
    assert done.returncode == 3, done  # following a job that did not succeed
    # Each attempt's own line, then the bot's line on its failure, with the traceback.
    lines = done.stdout.splitlines()
    trying = [line.split(" ", 2)[2] for line in lines if "trying" in line]
    assert trying == [f"#{n} trying attempt {n}" for n in (1, 2, 3)]
    assert sum("RuntimeError: attempt 3 broke" in line for line in lines) >= 1
    status, answer = http_json(f"{fleet.api}/jobs/{job_id}/logs?attempt=2", token=fleet.admin_token)
    assert status == 200
    assert {line["attempt"] for line in answer["lines"]} == {2}
    assert answer["lines"][0]["text"] == "trying attempt 2"
