"""Labels route jobs to the right bot, with real processes.

Two bots with different labels (one from BOT_LABELS, one from `--label` flags) and jobs
requiring each (plus some requiring nothing): every job runs, each on a bot whose labels
meet it. A job no online bot can take stays queued and says why, in the API and in
`botfleet job`; `botfleet bots` shows the labels. A malformed BOT_LABELS stops a bot at
start, naming the variable.
"""

from __future__ import annotations

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

DEADLINE_S = 90.0
JOBS_EACH = 12
TIMING = ["--bot-lease-ttl", "8", "--heartbeat-interval", "2", "--reaper-interval", "0.25"]


class Fleet:
    def __init__(self, workdir: Path, coordinator: Coordinator) -> None:
        self.workdir = workdir
        self.coordinator = coordinator
        self.bots: list[Process] = []

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        return self.coordinator.admin(method, path, body)

    def start_bot(self, name: str, env: dict[str, str], args: list[str]) -> Process:
        bot = start_bot(
            self.workdir, [self.coordinator.api], name, env={"MAX_CONCURRENCY": "3", **env},
            extra_args=args,
        )  # fmt: skip
        self.bots.append(bot)
        return bot

    def bot_ids(self) -> dict[str, str]:
        return {bot["name"]: bot["id"] for bot in self.admin("GET", "/bots")["bots"]}


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path, start_coordinator(tmp_path, extra_args=TIMING))
    with stopped_after(fleet.coordinator, fleet.bots):
        yield fleet


def _submit(fleet: Fleet, requires: dict[str, Any] | None, count: int) -> list[str]:
    job: dict[str, Any] = {"op": "sum", "payload": {"a": 1, "b": 2}}
    if requires is not None:
        job["requires"] = requires
    return list(fleet.admin("POST", "/jobs/bulk", {"jobs": [job] * count})["ids"])


def test_every_job_runs_on_a_bot_whose_labels_meet_it(fleet: Fleet) -> None:
    fleet.start_bot("gpu", {"BOT_LABELS": "gpu=a100,region=us"}, [])
    fleet.start_bot("cpu", {}, ["--label", "region=eu", "--label", "tier=small"])
    wait_until(lambda: len(fleet.bot_ids()) == 2, DEADLINE_S, "both bots registered")
    ids = fleet.bot_ids()
    views = {bot["name"]: bot for bot in fleet.admin("GET", "/bots")["bots"]}
    assert views["gpu"]["labels"] == {"gpu": "a100", "region": "us"}
    assert views["cpu"]["labels"] == {"region": "eu", "tier": "small"}
    listing = fleet.coordinator.botfleet("bots")
    assert "gpu=a100,region=us" in listing and "region=eu,tier=small" in listing

    on_gpu = _submit(fleet, {"gpu": "a100"}, JOBS_EACH)
    on_eu = _submit(fleet, {"region": ["eu", "ap"]}, JOBS_EACH)
    anywhere = _submit(fleet, None, JOBS_EACH)
    nowhere = _submit(fleet, {"gpu": "h100"}, 1)[0]

    def job(job_id: str) -> dict[str, Any]:
        return dict(fleet.admin("GET", f"/jobs/{job_id}"))

    everything = on_gpu + on_eu + anywhere
    wait_until(
        lambda: all(job(job_id)["state"] == "succeeded" for job_id in everything),
        DEADLINE_S,
        "every job succeeded",
    )
    assert {job(job_id)["bot_id"] for job_id in on_gpu} == {ids["gpu"]}
    assert {job(job_id)["bot_id"] for job_id in on_eu} == {ids["cpu"]}
    assert {job(job_id)["bot_id"] for job_id in anywhere} <= {ids["gpu"], ids["cpu"]}

    stuck = job(nowhere)
    assert stuck["state"] == "queued"
    assert stuck["waiting_for"] == "no online bot has gpu=h100"
    shown = fleet.coordinator.botfleet("job", nowhere)
    assert "no online bot has gpu=h100" in shown
    assert "gpu=h100" in shown


def test_a_malformed_bot_labels_stops_the_bot_naming_it(fleet: Fleet) -> None:
    bot = fleet.start_bot("bad", {"BOT_LABELS": "gpu"}, [])
    wait_until(lambda: not bot.alive(), DEADLINE_S, "the bot stopped")
    assert bot.returncode == 2
    assert "BOT_LABELS: 'gpu' is not key=value" in bot.log()
