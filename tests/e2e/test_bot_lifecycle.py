"""How a `python -m bot` ends, with real processes.

- SIGTERM while slow jobs run: they finish, the outbox is empty, the process exits 0
  and the coordinator shows none of its jobs running (and the bot offline).
- SIGTERM with jobs longer than the drain grace: they are handed back (failed,
  retryable: queued again), exit 0; a second SIGTERM stops at once (exit 1).
- The outbox folder made unusable while the bot runs: SAFE_HALT, its one line, exit 3.
  Either the state folder is replaced by a file (the bot checks, before every heartbeat,
  that its outbox file is still where the next start will look, and that the folder
  takes a write), or it is made read-only; `chmod 0500` does not stop root, so when the
  tests run as root that bot runs as nobody.

The slow operation comes from a plugin module written to tmp_path (BOT_PLUGINS).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import (
    Coordinator,
    Process,
    Unprivileged,
    bot_state_dir,
    can_drop_privileges,
    logs_on_failure,
    start_bot,
    start_coordinator,
    unprivileged,
    wait_until,
)

pytestmark = pytest.mark.e2e

DEADLINE_S = 60.0
# Heartbeats every 0.5 s: the bot checks its state folder that often.
TIMING = ["--bot-lease-ttl", "4", "--heartbeat-interval", "0.5", "--reaper-interval", "0.25"]
PLUGIN = """
import asyncio

from bot.jobs import op


@op("nap")
async def nap(job):
    await asyncio.sleep(float(job.payload["seconds"]))
    return {"slept": job.payload["seconds"]}
"""
OUTBOX_FILE = "outbox.jsonl"


@dataclass
class Rig:
    workdir: Path
    coordinator: Coordinator
    bots: list[Process]

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        return self.coordinator.admin(method, path, body)

    def start_bot(self, name: str, as_user: Unprivileged | None = None, **env: str) -> Process:
        workdir = self.workdir if as_user is None else as_user.workdir
        plugins = workdir / "plugins"
        plugins.mkdir(exist_ok=True)
        (plugins / "naps.py").write_text(PLUGIN)
        python_path = os.pathsep.join(filter(None, [str(plugins), os.environ.get("PYTHONPATH")]))
        if as_user is not None:
            as_user.own(bot_state_dir(workdir, name))
        bot = start_bot(
            workdir,
            [self.coordinator.api],
            name,
            env={"BOT_PLUGINS": "naps", "PYTHONPATH": python_path, **env},
            command_prefix=[] if as_user is None else as_user.prefix,
        )
        self.bots.append(bot)
        return bot

    def submit_naps(self, count: int, seconds: float) -> list[str]:
        jobs = [{"op": "nap", "payload": {"seconds": seconds}} for _ in range(count)]
        ids: list[str] = self.admin("POST", "/jobs/bulk", {"jobs": jobs})["ids"]
        return ids

    def job(self, job_id: str) -> dict[str, Any]:
        view: dict[str, Any] = self.admin("GET", f"/jobs/{job_id}")
        return view

    def bot_view(self, name: str) -> dict[str, Any]:
        """The coordinator's view of bot `name` (empty before it registers)."""
        views = [bot for bot in self.admin("GET", "/bots")["bots"] if bot["name"] == name]
        return dict(views[0]) if views else {}

    def running(self, ids: list[str]) -> int:
        return sum(1 for job_id in ids if self.job(job_id)["state"] == "running")

    def processes(self) -> list[Process]:
        return [self.coordinator.process, *self.bots]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    coordinator = start_coordinator(tmp_path, extra_args=TIMING)
    rig = Rig(tmp_path, coordinator, [])
    try:
        with logs_on_failure(rig.processes):
            yield rig
    finally:
        for bot in rig.bots:
            bot.stop()
        coordinator.process.stop()


def moves(log: str) -> list[tuple[str, str]]:
    return re.findall(r"state (\w+) -> (\w+)", log)


def test_sigterm_lets_slow_jobs_finish_then_exits_0(rig: Rig) -> None:
    ids = rig.submit_naps(4, seconds=1.5)
    bot = rig.start_bot("slow", MAX_CONCURRENCY="4")
    wait_until(lambda: rig.running(ids) == 4, DEADLINE_S, "four naps running")

    bot.signal(signal.SIGTERM)

    assert bot.wait(DEADLINE_S) == 0
    for job_id in ids:
        view = rig.job(job_id)
        assert (view["state"], view["result"]) == ("succeeded", {"slept": 1.5}), view
    outbox = bot_state_dir(rig.workdir, "slow") / OUTBOX_FILE
    assert not outbox.exists() or outbox.read_bytes() == b""
    view = rig.bot_view("slow")
    assert (view["state"], view["running"], view["lifecycle"]) == ("offline", [], "shutdown")
    assert rig.admin("GET", "/jobs?state=running")["jobs"] == []
    path = moves(bot.log())
    assert path[-2:] == [("PROCESS", "DRAINING"), ("DRAINING", "SHUTDOWN")], path


def test_jobs_longer_than_the_grace_are_handed_back(rig: Rig) -> None:
    ids = rig.submit_naps(2, seconds=3600)
    bot = rig.start_bot("graceful", MAX_CONCURRENCY="2", BOT_DRAIN_GRACE_SEC="1")
    wait_until(lambda: rig.running(ids) == 2, DEADLINE_S, "two long naps running")

    bot.signal(signal.SIGTERM)

    assert bot.wait(DEADLINE_S) == 0
    for job_id in ids:
        view = rig.job(job_id)
        assert view["state"] == "queued" and "drain grace of 1 s" in view["error"], view
    assert "drain grace of 1 s ran out: 2 job(s) cancelled" in bot.log()
    assert rig.bot_view("graceful")["state"] == "offline"


def test_a_second_sigterm_stops_at_once(rig: Rig) -> None:
    ids = rig.submit_naps(1, seconds=3600)
    bot = rig.start_bot("impatient")
    wait_until(lambda: rig.running(ids) == 1, DEADLINE_S, "a long nap running")
    bot.signal(signal.SIGTERM)
    wait_until(lambda: "-> DRAINING" in bot.log(), DEADLINE_S, "the drain to begin")

    bot.signal(signal.SIGTERM)

    assert bot.wait(DEADLINE_S) == 1
    assert "second stop request" in bot.log()


def replace_state_dir_with_a_file(state_dir: Path) -> None:
    state_dir.rename(state_dir.with_name(state_dir.name + ".moved"))
    state_dir.write_text("not a folder any more\n")


def make_read_only(state_dir: Path) -> None:
    state_dir.chmod(0o500)


@pytest.mark.parametrize(
    ("spoil", "as_nobody"),
    [
        (replace_state_dir_with_a_file, False),
        pytest.param(
            make_read_only,
            True,
            marks=pytest.mark.skipif(
                not can_drop_privileges(),
                reason="running as root without setpriv: no user whom chmod would stop",
            ),
        ),
    ],
    ids=["replaced-by-a-file", "read-only"],
)
def test_an_unusable_outbox_folder_ends_in_safe_halt(
    rig: Rig, tmp_path: Path, spoil: Any, as_nobody: bool
) -> None:
    ids = rig.submit_naps(2, seconds=3600)
    with contextlib.ExitStack() as leave:
        user = leave.enter_context(unprivileged(tmp_path)) if as_nobody else None
        bot = rig.start_bot("fragile", as_user=user, MAX_CONCURRENCY="2")
        leave.callback(bot.stop)  # before its folder goes
        wait_until(lambda: rig.running(ids) == 2, DEADLINE_S, "two long naps running")
        state_dir = bot_state_dir(rig.workdir if user is None else user.workdir, "fragile")

        try:
            spoil(state_dir)
            assert bot.wait(DEADLINE_S) == 3
        finally:
            if state_dir.is_dir():
                state_dir.chmod(0o700)
        log = bot.log()
    lines = log.strip().splitlines()
    assert "SAFE_HALT: the outbox cannot keep reports" in lines[-1], lines[-5:]
    assert "Make BOT_STATE_DIR" in lines[-1]
    assert ("PROCESS", "SAFE_HALT") in moves(log)
    view = rig.bot_view("fragile")
    assert (view["state"], view["lifecycle"]) == ("offline", "safe_halt")
    # Its jobs went back to the queue at once (deregistered), not after a lease ran out.
    assert all(rig.job(job_id)["state"] == "queued" for job_id in ids)


def test_the_operator_sees_and_lifts_a_quarantine(rig: Rig) -> None:
    bot = rig.start_bot("suspect")
    # Waiting for work, a bot holds a long-poll claim open: it shows CLAIM (or IDLE).
    wait_until(
        lambda: rig.bot_view("suspect").get("lifecycle") in ("idle", "claim"),
        DEADLINE_S,
        "the bot waiting for work",
    )
    bot_id = rig.bot_view("suspect")["id"]

    rig.coordinator.botfleet("bots", "quarantine", bot_id)
    wait_until(
        lambda: rig.bot_view("suspect")["lifecycle"] == "quarantined", DEADLINE_S, "quarantined"
    )
    listing = [line for line in rig.coordinator.botfleet("bots").splitlines() if bot_id in line]
    assert len(listing) == 1 and "online (quarantined)" in listing[0], listing
    jobs = [{"op": "sum", "payload": {"a": 1, "b": 2}}]
    (job_id,) = rig.admin("POST", "/jobs/bulk", {"jobs": jobs})["ids"]
    heartbeats: set[str] = set()

    def more_heartbeats() -> bool:
        heartbeats.add(rig.bot_view("suspect")["last_heartbeat"])
        return len(heartbeats) >= 3

    wait_until(more_heartbeats, DEADLINE_S, "heartbeats while quarantined")
    assert rig.job(job_id)["state"] == "queued"  # no claims while quarantined

    rig.coordinator.botfleet("bots", "release", bot_id)
    wait_until(lambda: rig.job(job_id)["state"] == "succeeded", DEADLINE_S, "work resumed")
    path = moves(bot.log())
    assert ("QUARANTINED", "IDLE") in path, path  # the claim held open was given up
    assert {source for source, target in path if target == "QUARANTINED"} <= {"IDLE", "CLAIM"}
