"""A load generator: many simulated idle bots heartbeating and long-polling one coordinator.

Each simulated bot registers, then runs two loops the way the agent does when idle: a
heartbeat every `heartbeat_interval` the coordinator hands out, and a claim with
`wait_ms` (long-poll) again and again. Each loop starts at a random offset, so the fleet
is spread out as bots started at different times are, not beating in step. The
coordinator's CPU is measured over a window after a warm-up. Bounded in time; loopback
only.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

import aiohttp

from benchmarks.harness import BenchmarkError, CpuMeter, Usage, percentile
from benchmarks.simbot import SimBot

REGISTER_CONCURRENCY = 50
ERROR_PAUSE_S = 1.0


@dataclass
class FleetCounters:
    heartbeats: int = 0
    claims: int = 0
    errors: int = 0
    heartbeat_s: list[float] = field(default_factory=list)
    first_error: str | None = None

    def error(self, exc: Exception) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True, slots=True)
class FleetFigures:
    bots: int
    usage: Usage  # the coordinator's CPU over the window
    heartbeats_per_s: float
    claims_per_s: float  # long-polls answered (empty) per second
    heartbeat_p50_s: float
    heartbeat_p99_s: float
    errors: int
    first_error: str | None


async def heartbeat_loop(bot: SimBot, counters: FleetCounters, rng: random.Random) -> None:
    await asyncio.sleep(rng.uniform(0, bot.heartbeat_interval_s))
    while True:
        started = time.perf_counter()
        try:
            await bot.heartbeat()
        except (aiohttp.ClientError, BenchmarkError, TimeoutError) as exc:
            counters.error(exc)
        else:
            counters.heartbeats += 1
            counters.heartbeat_s.append(time.perf_counter() - started)
        await asyncio.sleep(bot.heartbeat_interval_s)


async def claim_loop(
    bot: SimBot, counters: FleetCounters, wait_ms: int, rng: random.Random
) -> None:
    await asyncio.sleep(rng.uniform(0, wait_ms / 1000))
    while True:
        try:
            jobs = await bot.claim(limit=5, wait_ms=wait_ms)
            if jobs:
                await bot.complete_all(jobs)
        except (aiohttp.ClientError, BenchmarkError, TimeoutError) as exc:
            counters.error(exc)
            await asyncio.sleep(ERROR_PAUSE_S)
        else:
            counters.claims += 1


async def register_all(
    session: aiohttp.ClientSession, api: str, enroll_token: str, count: int
) -> list[SimBot]:
    limit = asyncio.Semaphore(REGISTER_CONCURRENCY)

    async def one(number: int) -> SimBot:
        async with limit:
            bot = SimBot(session, api, f"sim-{number:05d}")
            await bot.register(enroll_token)
            return bot

    return list(await asyncio.gather(*(one(n) for n in range(count))))


async def simulate_fleet(
    api: str,
    enroll_token: str,
    coordinator_pid: int,
    bots: int,
    warmup_s: float,
    window_s: float,
    wait_ms: int = 20_000,
) -> FleetFigures:
    """Register `bots`, keep them idle and alive, measure the coordinator over `window_s`."""
    connector = aiohttp.TCPConnector(limit=bots * 2 + 10)
    timeout = aiohttp.ClientTimeout(total=wait_ms / 1000 + 30)
    rng = random.Random(7)
    counters = FleetCounters()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        fleet = await register_all(session, api, enroll_token, bots)
        tasks = [
            asyncio.create_task(loop)
            for bot in fleet
            for loop in (
                heartbeat_loop(bot, counters, rng),
                claim_loop(bot, counters, wait_ms, rng),
            )
        ]
        try:
            await asyncio.sleep(warmup_s)
            counters.heartbeats = counters.claims = 0
            counters.heartbeat_s.clear()
            meter = CpuMeter([coordinator_pid])
            await asyncio.sleep(window_s)
            usage = meter.finish()
            snapshot = (counters.heartbeats, counters.claims, list(counters.heartbeat_s))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    heartbeats, claims, heartbeat_s = snapshot
    return FleetFigures(
        bots=bots,
        usage=usage,
        heartbeats_per_s=heartbeats / usage.wall_s,
        claims_per_s=claims / usage.wall_s,
        heartbeat_p50_s=percentile(heartbeat_s, 50),
        heartbeat_p99_s=percentile(heartbeat_s, 99),
        errors=counters.errors,
        first_error=counters.first_error,
    )
