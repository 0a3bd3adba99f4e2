"""Bots run against the in-memory FakeCoordinator, with a scaled clock (sleeps 100x shorter);
the work pipeline alone (`make_scheduler`), with hooks that record what they are told."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.errors import OutboxError
from bot.jobs import Outcome
from bot.machine import Bot
from bot.settings import Settings
from bot.state import BotState, Job
from bot.system.host import HostFacts
from bot.testing import FakeCoordinator, ScaledClock, standalone_scheduler
from bot.work.hooks import StandaloneHooks
from bot.work.scheduler import Scheduler
from tests.support.processes import wait_until_async

HOST = HostFacts(
    hostname="test-host",
    platform="Linux-x86_64",
    os="linux",
    cpu_cores=2,
    mem_mb=2048,
    python="3.11",
)
GENEROUS_S = 30.0


async def eventually(predicate: Callable[[], bool], what: str) -> None:
    async def check() -> bool:
        return predicate()

    await wait_until_async(check, GENEROUS_S, what)


@dataclass
class RunningBot:
    bot: Bot
    task: asyncio.Task[int]
    fake: FakeCoordinator
    clock: ScaledClock

    async def stop(self) -> int:
        self.bot.request_stop("test")
        return await asyncio.wait_for(self.task, GENEROUS_S)

    async def exit_code(self) -> int:
        return await asyncio.wait_for(self.task, GENEROUS_S)


StartBot = Callable[..., RunningBot]


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
async def start_bot(state_dir: Path) -> AsyncIterator[StartBot]:
    started: list[RunningBot] = []

    def start(
        fake: FakeCoordinator, *, bot_options: dict[str, Any] | None = None, **settings: Any
    ) -> RunningBot:
        clock = ScaledClock()
        options: dict[str, Any] = {
            "api": fake,
            "clock": clock,
            "rng": random.Random(3),
            "host": HOST,
        }
        options.update(bot_options or {})
        settings.setdefault("state_dir", state_dir)
        # On the scaled clock a minute passes in 0.6 s: deadlines only where a test sets them.
        settings.setdefault("drain_grace_s", 1e6)
        settings.setdefault("report_limit_s", 1e6)
        settings.setdefault("claim_hedge_ms", 0)  # hedged claims only where a test asks
        bot = Bot(Settings(**settings), **options)
        running = RunningBot(bot, asyncio.create_task(bot.run()), fake, clock)
        started.append(running)
        return running

    yield start
    for running in started:
        if not running.task.done():
            running.bot.request_stop("teardown")
            running.bot.request_stop("teardown")
        await asyncio.wait_for(running.task, GENEROUS_S)


def runs(bot: Bot, job_id: str) -> bool:
    """Whether `job_id` runs in `bot` now (False before the bot has its scheduler)."""
    return bot.scheduler is not None and job_id in bot.scheduler.running


# ---------------------------------------------------------------- the work pipeline alone

MakeScheduler = Callable[..., Scheduler]


@pytest.fixture
def make_scheduler(tmp_path: Path) -> Iterator[MakeScheduler]:
    """`standalone_scheduler` in tmp_path, its outbox closed after the test."""
    made: list[Scheduler] = []

    def make(api: Any, **options: Any) -> Scheduler:
        scheduler = standalone_scheduler(api, options.pop("state_dir", tmp_path), **options)
        made.append(scheduler)
        return scheduler

    yield make
    for scheduler in made:
        scheduler.outbox.close()


class RecordingHooks(StandaloneHooks):
    """Scheduler hooks that record what they are told; `allowed`, `up` and `renewed` say
    whether claims may go, whether the coordinator is reachable, whether renewals work."""

    def __init__(self, renewed: bool = True) -> None:
        self.renewed = renewed
        self.renewals = 0
        self.allowed = True
        self.up = True
        self.activities: list[BotState] = []
        self.backoffs: list[str | None] = []
        self.finished: list[Outcome] = []
        self.fatals: list[OutboxError] = []
        self.exhausted: list[int] = []  # abandoned threads running, each time past the limit

    def may_claim(self) -> bool:
        return self.allowed

    def activity_changed(self, activity: BotState) -> None:
        self.activities.append(activity)

    async def renew(self, generation: int) -> bool:
        self.renewals += 1
        return self.renewed

    def fatal(self, error: OutboxError) -> None:
        self.fatals.append(error)

    def backing_off(self, reason: str | None) -> None:
        self.backoffs.append(reason)

    def reachable(self) -> bool:
        return self.up

    def job_finished(self, job: Job, outcome: Outcome) -> None:
        self.finished.append(outcome)

    def threads_exhausted(self, abandoned: int) -> None:
        self.exhausted.append(abandoned)


async def run_until(
    loop: Callable[[asyncio.Event], Any], predicate: Callable[[], bool], what: str
) -> None:
    """Run `loop` until `predicate` holds, then stop it."""
    stop = asyncio.Event()
    task = asyncio.create_task(loop(stop))
    try:
        await eventually(predicate, what)
    finally:
        stop.set()
        await asyncio.wait_for(task, GENEROUS_S)
