"""An operator's assignment outlasts a bot's restart, with real processes.

A bot is paused with `botfleet bots pause ID` and given other slots through the API,
killed, and started again under the same name and state folder (so it registers again,
as a new instance, asking for its own concurrency): the coordinator keeps the operator's
choices, the bot claims nothing until `botfleet bots resume ID`, and then runs the job
waiting for it. Registration counts as the bot's first heartbeat, so `botfleet bots`
shows one as soon as the bot is listed.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import (
    Coordinator,
    Process,
    start_bot,
    start_coordinator,
    stopped_after,
    wait_until,
)

pytestmark = pytest.mark.e2e

DEADLINE_S = 60.0
# Heartbeats every 2 s: the bot is listed well before its first one.
TIMING = ["--bot-lease-ttl", "8", "--heartbeat-interval", "2", "--reaper-interval", "0.25"]
NAME = "steady"


class Fleet:
    def __init__(self, workdir: Path, coordinator: Coordinator) -> None:
        self.workdir = workdir
        self.coordinator = coordinator
        self.bots: list[Process] = []

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        return self.coordinator.admin(method, path, body)

    def start_bot(self, max_concurrency: int) -> Process:
        env = {"MAX_CONCURRENCY": str(max_concurrency)}
        bot = start_bot(self.workdir, [self.coordinator.api], NAME, env=env)
        self.bots.append(bot)
        return bot

    def bot_view(self) -> dict[str, Any]:
        """The coordinator's view of the bot (empty before it registers)."""
        views = [bot for bot in self.admin("GET", "/bots")["bots"] if bot["name"] == NAME]
        return dict(views[0]) if views else {}

    def botfleet(self, *args: str) -> str:
        return self.coordinator.botfleet(*args, timeout_s=DEADLINE_S)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path, start_coordinator(tmp_path, extra_args=TIMING))
    with stopped_after(fleet.coordinator, fleet.bots):
        yield fleet


def test_an_operators_assignment_outlasts_a_bot_restart(fleet: Fleet) -> None:
    bot = fleet.start_bot(max_concurrency=2)
    wait_until(lambda: bool(fleet.bot_view()), DEADLINE_S, "the bot registered")
    first = fleet.bot_view()
    bot_id = first["id"]
    assert first["last_heartbeat"] is not None, first
    (row,) = [line for line in fleet.botfleet("bots").splitlines() if bot_id in line]
    assert " ago " in row, row  # the HEARTBEAT column, not "-"

    fleet.botfleet("bots", "pause", bot_id)
    fleet.admin("PATCH", f"/bots/{bot_id}", {"assignment": {"max_concurrency": 5}})
    chosen = {"operations": first["assignment"]["operations"], "max_concurrency": 5}
    assert fleet.admin("GET", f"/bots/{bot_id}")["assignment"] == {**chosen, "paused": True}

    bot.signal(signal.SIGKILL)
    bot.wait(DEADLINE_S)
    fleet.start_bot(max_concurrency=3)

    def registered_again() -> bool:
        view = fleet.admin("GET", f"/bots/{bot_id}")
        return view["state"] == "online" and view["instance_id"] != first["instance_id"]

    wait_until(registered_again, DEADLINE_S, "the restarted bot registered again")
    assert fleet.admin("GET", f"/bots/{bot_id}")["assignment"] == {**chosen, "paused": True}

    (job_id,) = fleet.admin(
        "POST", "/jobs/bulk", {"jobs": [{"op": "sum", "payload": {"a": 1, "b": 2}}]}
    )["ids"]
    heartbeats: set[str] = set()

    def heartbeats_went_on() -> bool:
        heartbeats.add(fleet.admin("GET", f"/bots/{bot_id}")["last_heartbeat"])
        return len(heartbeats) >= 3

    wait_until(heartbeats_went_on, DEADLINE_S, "heartbeats while paused")
    assert fleet.admin("GET", f"/jobs/{job_id}")["state"] == "queued"  # still paused
    assert fleet.admin("GET", f"/bots/{bot_id}")["assignment"] == {**chosen, "paused": True}

    fleet.botfleet("bots", "resume", bot_id)
    wait_until(
        lambda: fleet.admin("GET", f"/jobs/{job_id}")["state"] == "succeeded",
        DEADLINE_S,
        "the job run once resumed",
    )
    assert fleet.admin("GET", f"/bots/{bot_id}")["assignment"] == {**chosen, "paused": False}
