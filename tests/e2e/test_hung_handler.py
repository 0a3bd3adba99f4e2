"""A plain handler that never returns, with real processes.

A coordinator with `--default-job-timeout 1s` and a `python -m bot` whose plugin (written to
tmp_path, BOT_PLUGINS) has a plain handler that blocks for ever on an event it never gets.
Each such job fails by its timeout (retryable; with max_attempts 1 it ends failed), its slot
comes back at once (the bot, with one slot, runs the `sum` job that follows), and its thread
is abandoned; past 8 abandoned threads the bot drains and exits 4 for its supervisor to
restart it. A bad `--default-job-timeout` stops the server with a line naming the flag.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.work.threads import ABANDONED_LIMIT
from tests.support.processes import (
    http_json,
    logs_on_failure,
    start_bot,
    start_coordinator,
    wait_until,
)

pytestmark = pytest.mark.e2e

DEADLINE_S = 60.0
EXIT_RESTART = 4
TIMING = ["--bot-lease-ttl", "4", "--heartbeat-interval", "0.5", "--reaper-interval", "0.25"]
PLUGIN = """
import threading

from bot.jobs import op


@op("hang")
def hang(job):
    threading.Event().wait()  # never set: the handler ignores its cancellation for ever
"""


def test_hung_plain_handlers_give_their_slots_back_then_the_bot_exits_4(
    tmp_path: Path,
) -> None:
    coordinator = start_coordinator(tmp_path, extra_args=[*TIMING, "--default-job-timeout", "1s"])
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "hangs.py").write_text(PLUGIN)
    python_path = os.pathsep.join(filter(None, [str(plugins), os.environ.get("PYTHONPATH")]))
    bot = start_bot(
        tmp_path,
        [coordinator.api],
        "hung",
        env={"BOT_PLUGINS": "hangs", "PYTHONPATH": python_path, "MAX_CONCURRENCY": "1"},
    )

    def call(method: str, path: str, body: Any = None) -> Any:
        status, answer = http_json(coordinator.api + path, method, body, coordinator.admin_token)
        assert 200 <= status < 300, f"{method} {path}: HTTP {status} {answer}"
        return answer

    def submit(op: str, payload: dict[str, Any]) -> str:
        job_id: str = call("POST", "/jobs", {"op": op, "payload": payload, "max_attempts": 1})["id"]
        return job_id

    def ended(job_id: str) -> dict[str, Any]:
        view: dict[str, Any] = {}

        def done() -> bool:
            view.update(call("GET", f"/jobs/{job_id}"))
            return view["state"] in ("succeeded", "failed", "cancelled")

        wait_until(done, DEADLINE_S, f"job {job_id} to end")
        return view

    try:
        with logs_on_failure(lambda: [coordinator.process, bot]):
            for n in range(1, ABANDONED_LIMIT + 2):
                hung = ended(submit("hang", {}))
                assert hung["state"] == "failed", hung
                assert hung["error"].startswith("timeout: "), hung
                assert hung["timeout_s"] is None  # the coordinator's default applied
                if n <= ABANDONED_LIMIT:
                    # Its slot came back: the one slot runs the next job.
                    summed = ended(submit("sum", {"a": n, "b": 1}))
                    assert (summed["state"], summed["result"]) == ("succeeded", {"result": n + 1})

            assert bot.wait(DEADLINE_S) == EXIT_RESTART
            log = bot.log()
            assert f"{ABANDONED_LIMIT + 1} abandoned handler threads still run" in log
            assert "its handler ignored the cancellation; its thread is abandoned" in log
            assert "state DRAINING -> SHUTDOWN" in log
            view = next(b for b in call("GET", "/bots")["bots"] if b["name"] == "hung")
            assert (view["state"], view["lifecycle"]) == ("offline", "shutdown")
    finally:
        bot.stop()
        coordinator.process.stop()


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("soon", "must be a duration such as 30s, 5m, 1h or 7d, not 'soon'"),
        ("0s", "must be more than 0"),
        ("8d", "--default-job-timeout must be more than 0 and at most a week"),
    ],
)
def test_a_bad_default_job_timeout_stops_the_server_naming_the_flag(
    tmp_path: Path, value: str, says: str
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BOTFLEET_", "BOT_"))}
    server = [sys.executable, "-m", "botfleet", "server", "--state-dir", str(tmp_path)]
    done = subprocess.run(
        [*server, "--port", "0", f"--default-job-timeout={value}"],
        capture_output=True,
        text=True,
        env=clean,
        timeout=120,
    )
    assert done.returncode == 2, done
    assert "--default-job-timeout" in done.stderr and says in done.stderr, done.stderr
