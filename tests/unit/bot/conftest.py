"""Bots run against the in-memory FakeCoordinator, with a scaled clock (sleeps 100x shorter)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.machine import Bot
from bot.settings import Settings
from bot.system.host import HostFacts
from bot.testing import FakeCoordinator, ScaledClock
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
