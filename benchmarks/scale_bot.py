"""One real bot (`python -m bot`, default settings): CPU and RSS idle, RSS as jobs go by.

Idle: the bot has registered and waits on its long-poll claim with an empty queue; its
CPU time is measured over `idle_s`. Then jobs are submitted in bulk and the bot's RSS is
read each time the number it has done reaches a checkpoint (e.g. 10,000 and 100,000),
with its peak RSS sampled throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from benchmarks.fleet import (
    AdminClient,
    start_bot,
    start_coordinator,
    sum_job,
    wait_for_succeeded,
)
from benchmarks.harness import (
    BenchmarkError,
    CpuMeter,
    PeakRss,
    Usage,
    require_alive,
    rss_bytes,
)

BULK_SIZE = 1000
ONLINE_TIMEOUT_S = 60.0
SETTLE_S = 3.0  # after registering: the first heartbeat and claim are start-up, not idling


@dataclass(frozen=True, slots=True)
class BotFigures:
    idle: Usage
    idle_rss: int
    rss_after: dict[int, int]  # jobs done -> RSS then
    peak_rss: int
    jobs_per_s: float  # while working through the checkpoints (informational)
    busy_cores: float  # the bot's CPU while working, in cores


async def wait_online(client: AdminClient, count: int) -> None:
    deadline = time.monotonic() + ONLINE_TIMEOUT_S
    while True:
        online = [bot for bot in (await client.bots()).bots if bot.state == "online"]
        if len(online) >= count:
            return
        if time.monotonic() > deadline:
            raise BenchmarkError(f"{count} bot(s) not online after {ONLINE_TIMEOUT_S:.0f} s")
        await asyncio.sleep(0.05)


async def submit_range(client: AdminClient, start: int, stop: int) -> list[str]:
    """Submit sum jobs numbered start..stop-1 in bulk requests; their ids in order."""
    ids: list[str] = []
    for offset in range(start, stop, BULK_SIZE):
        ids += await client.submit_bulk(
            [sum_job(i, 1) for i in range(offset, min(offset + BULK_SIZE, stop))]
        )
    return ids


async def bot_figures(
    workdir: Path,
    idle_s: float,
    checkpoints: list[int],
    bot_env: Mapping[str, str],
    timeout_s: float,
) -> BotFigures:
    with contextlib.ExitStack() as stack:
        coordinator = start_coordinator(stack, workdir, name="coordinator-bot")
        bot = start_bot(stack, workdir, coordinator, "measured", env=bot_env)
        async with AdminClient.connect(coordinator) as client:
            await wait_online(client, 1)
            await asyncio.sleep(SETTLE_S)
            meter = CpuMeter([bot.pid])
            await asyncio.sleep(idle_s)
            idle = meter.finish()
            require_alive(bot)
            idle_rss = rss_bytes(bot.pid)

            rss_after: dict[int, int] = {}
            done = 0
            meter = CpuMeter([bot.pid])
            with PeakRss([bot.pid]) as peak:
                for checkpoint in sorted(checkpoints):
                    ids: list[str] = []
                    for offset in range(done, checkpoint, BULK_SIZE):
                        batch = [
                            sum_job(i, 1)
                            for i in range(offset, min(offset + BULK_SIZE, checkpoint))
                        ]
                        ids += await client.submit_bulk(batch)
                    if ids:
                        await wait_for_succeeded(client, ids, timeout_s, total=checkpoint)
                    done = checkpoint
                    require_alive(bot)
                    rss_after[checkpoint] = rss_bytes(bot.pid)
            busy = meter.finish()
    return BotFigures(
        idle=idle,
        idle_rss=idle_rss,
        rss_after=rss_after,
        peak_rss=peak.peak.get(bot.pid, 0),
        jobs_per_s=done / busy.wall_s if busy.wall_s else 0.0,
        busy_cores=busy.core_fraction,
    )
