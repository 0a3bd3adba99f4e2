"""The examples of the documentation (docs/examples) run as written against a real
coordinator and a real bot, which loads the handlers of the handler guide as a plugin."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import Coordinator, logs_on_failure, start_bot, start_coordinator

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


@pytest.fixture(scope="module")
def coordinator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coordinator]:
    workdir = tmp_path_factory.mktemp("examples")
    server = start_coordinator(workdir)
    plugins = {
        "BOT_PLUGINS": "handlers",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(EXAMPLES), os.environ.get("PYTHONPATH")])),
    }
    bot = start_bot(workdir, [server.api], "example-bot", env={"MAX_CONCURRENCY": "16", **plugins})
    try:
        with logs_on_failure(lambda: [server.process, bot]):
            yield server
    finally:
        bot.stop()
        server.process.stop()


def run_example(name: str, coordinator: Coordinator) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOTFLEET_", "BOT_"))}
    env |= {"BOTFLEET_SERVER": coordinator.url, "BOTFLEET_TOKEN": coordinator.admin_token}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, f"{name}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_every_example_is_tested() -> None:
    assert sorted(path.name for path in EXAMPLES.glob("*.py")) == [
        "fan_out.py",
        "handler_jobs.py",
        "handlers.py",  # the plugin the bot loads for handler_jobs.py
        "quickstart.py",
    ]


def test_quickstart(coordinator: Coordinator) -> None:
    out = run_example("quickstart.py", coordinator)
    assert "{'result': 3}" in out
    assert "failed as expected:" in out
    assert "seven" in out


def test_fan_out(coordinator: Coordinator) -> None:
    out = run_example("fan_out.py", coordinator)
    assert "1000 of 1000 succeeded; the results add up to 500500" in out


def test_handlers(coordinator: Coordinator) -> None:
    out = run_example("handler_jobs.py", coordinator)
    assert "word_count: {'words': 8, 'top': [['the', 3], ['cat', 2]]}" in out
    assert "digest: 20000 rounds" in out
    assert (
        "invalid payload after 1 attempt: invalid payload: Object contains unknown field `txt`"
        in out
    )
    assert "too slow: timeout: the job ran longer than its timeout_s of 1 s" in out
