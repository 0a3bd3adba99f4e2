"""An operator revokes a working bot, with real processes and the command line.

The bot "doomed" runs two jobs that would take an hour on it (a plugin naps long only
on that bot). `botfleet bots revoke ID` cuts it off: it halts with one line and exit 5,
without registering in a loop, and its jobs, queued again without using an attempt (each
allows one), finish on the bot "spare". Once allowed, "doomed" registers again as the
same bot. A bot that left is forgotten with `botfleet bots forget ID`. With two
coordinators on one PostgreSQL, a revocation made through one cuts off a bot working
through the other at once, although that one has the bot's token in its cache.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bot.machine import EXIT_OK, EXIT_REVOKED
from tests.support.processes import (
    Coordinator,
    Process,
    logs_on_failure,
    start_bot,
    start_coordinator,
    stopped_after,
    wait_until,
)

pytestmark = pytest.mark.e2e

DEADLINE_S = 60.0
# A long bot lease: however loaded the machine, "doomed" registers once before the revocation.
TIMING = ["--bot-lease-ttl", "30", "--heartbeat-interval", "1", "--reaper-interval", "0.25"]
PLUGIN = """
import asyncio
import os
import signal

from bot.jobs import op


@op("nap")
async def nap(job):
    if job.payload["slow_on"] == os.environ["BOT_NAME"]:
        await asyncio.sleep(3600)
    return {"napped_on": os.environ["BOT_NAME"]}
"""


@dataclass
class Fleet:
    workdir: Path
    coordinator: Coordinator
    bots: list[Process] = field(default_factory=list)

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        return self.coordinator.admin(method, path, body)

    def start_bot(self, name: str) -> Process:
        plugins = self.workdir / "plugins"
        plugins.mkdir(exist_ok=True)
        (plugins / "naps.py").write_text(PLUGIN)
        python_path = os.pathsep.join(filter(None, [str(plugins), os.environ.get("PYTHONPATH")]))
        env = {"BOT_PLUGINS": "naps", "PYTHONPATH": python_path, "MAX_CONCURRENCY": "2"}
        bot = start_bot(self.workdir, [self.coordinator.api], name, env=env)
        self.bots.append(bot)
        return bot

    def bot_view(self, name: str) -> dict[str, Any]:
        views = [bot for bot in self.admin("GET", "/bots")["bots"] if bot["name"] == name]
        return dict(views[0]) if views else {}

    def job(self, job_id: str) -> dict[str, Any]:
        view: dict[str, Any] = self.admin("GET", f"/jobs/{job_id}")
        return view

    def botfleet(self, *args: str) -> str:
        return self.coordinator.botfleet(*args, timeout_s=DEADLINE_S)

    def processes(self) -> list[Process]:
        return [self.coordinator.process, *self.bots]


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path, start_coordinator(tmp_path, extra_args=TIMING))
    with stopped_after(fleet.coordinator, fleet.bots):
        yield fleet


def test_a_revoked_bot_stops_and_its_jobs_finish_elsewhere_without_using_an_attempt(
    fleet: Fleet,
) -> None:
    doomed = fleet.start_bot("doomed")
    wait_until(lambda: fleet.bot_view("doomed").get("state") == "online", DEADLINE_S, "online")
    bot_id = fleet.bot_view("doomed")["id"]
    jobs = [{"op": "nap", "payload": {"slow_on": "doomed"}, "max_attempts": 1} for _ in range(2)]
    ids: list[str] = fleet.admin("POST", "/jobs/bulk", {"jobs": jobs})["ids"]
    wait_until(
        lambda: all(fleet.job(i)["state"] == "running" for i in ids), DEADLINE_S, "both running"
    )
    assert {fleet.job(i)["bot_id"] for i in ids} == {bot_id}

    said = fleet.botfleet("bots", "revoke", bot_id)

    assert f"{bot_id} (doomed): revoked" in said
    assert doomed.wait(DEADLINE_S) == EXIT_REVOKED
    log = doomed.log()
    assert "SAFE_HALT: this bot is revoked" in log
    assert log.count("registered as") == 1  # no re-registration, let alone a loop
    assert "revoked" in fleet.botfleet("bots")
    for job_id in ids:
        view = fleet.job(job_id)
        assert (view["state"], view["attempts_used"]) == ("queued", 0)

    spare = fleet.start_bot("spare")
    wait_until(
        lambda: all(fleet.job(i)["state"] == "succeeded" for i in ids), DEADLINE_S, "jobs done"
    )
    spare_id = fleet.bot_view("spare")["id"]
    for job_id in ids:
        view = fleet.job(job_id)
        assert view["result"] == {"napped_on": "spare"} and view["bot_id"] == spare_id
        assert (view["attempt"], view["attempts_used"], view["max_attempts"]) == (2, 1, 1)

    assert f"{bot_id} (doomed): allowed" in fleet.botfleet("bots", "allow", bot_id)
    fleet.start_bot("doomed")
    wait_until(lambda: fleet.bot_view("doomed").get("state") == "online", DEADLINE_S, "doomed back")
    back = fleet.bot_view("doomed")
    assert back["id"] == bot_id and back["revoked_at"] is None

    spare.signal(signal.SIGTERM)
    assert spare.wait(DEADLINE_S) == EXIT_OK
    assert "forgotten" in fleet.botfleet("bots", "forget", spare_id)
    assert fleet.bot_view("spare") == {}
    assert fleet.job(ids[0])["bot_id"] == spare_id


@pytest.mark.postgres
def test_a_revocation_through_one_coordinator_stops_a_bot_of_the_other(
    tmp_path: Path, pg_database: str
) -> None:
    here = start_coordinator(tmp_path, "coordinator-1", db_url=pg_database, extra_args=TIMING)
    there = start_coordinator(tmp_path, "coordinator-2", db_url=pg_database, extra_args=TIMING)
    fleet = Fleet(tmp_path, here)
    try:
        with logs_on_failure(lambda: [*fleet.processes(), there.process]):
            doomed = fleet.start_bot("doomed")
            wait_until(
                lambda: fleet.bot_view("doomed").get("state") == "online", DEADLINE_S, "online"
            )
            bot_id = fleet.bot_view("doomed")["id"]
            job = {"op": "nap", "payload": {"slow_on": "doomed"}, "max_attempts": 1}
            job_id = fleet.admin("POST", "/jobs", job)["id"]
            wait_until(lambda: fleet.job(job_id)["state"] == "running", DEADLINE_S, "running")

            there.botfleet("bots", "revoke", bot_id, timeout_s=DEADLINE_S)

            assert doomed.wait(DEADLINE_S) == EXIT_REVOKED
            assert "SAFE_HALT: this bot is revoked" in doomed.log()
            view = fleet.job(job_id)
            assert (view["state"], view["attempts_used"]) == ("queued", 0)
            assert fleet.bot_view("doomed")["revoked_at"] is not None
    finally:
        for bot in fleet.bots:
            bot.stop()
        here.process.stop()
        there.process.stop()
