"""Claim throughput with a small and a large queue, which should stay close to each other.

Each queue is filled straight through the store (`coordinator.store.open_store`, bulk
`submit_jobs` of 10,000 per transaction, one SQLite file per size): much faster than
HTTP, and it does not change what is measured. Then:

- store API: one bot claims `batch` jobs per `claim_jobs` call and completes them in one
  `report` call; the claim calls are timed alone (claim rate) and with the reports
  (cycle rate);
- HTTP: one coordinator process per file, and a simulated bot doing the same cycle over
  POST /v1/jobs/claim (limit `batch`) and POST /v1/jobs/report.

The work is cut into rounds that alternate between the sizes, and each figure is the
median over its rounds, so a busy spell on the machine does not land on one size only.
After each round, off the clock, as many jobs as it took are queued again, so every
round runs at the queue size it is named for (and rounds can be long enough to time).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.fleet import AdminClient, start_coordinator, sum_job
from benchmarks.harness import BenchmarkError, CpuMeter, median
from benchmarks.simbot import SimBot
from botfleet.clock import SystemClock
from coordinator.retry import exponential_backoff
from coordinator.store import Store, open_store
from coordinator.store.base import ClaimInput, NewJob, Registration, ReportInput, ReportOutcome

FILL_CHUNK = 10_000
HTTP_BULK = 1_000  # jobs per bulk submit (a request body stays well under 1 MiB)
JOB_LEASE_TTL_S = 180.0

Round = Callable[[int], Awaitable[tuple[float, float]]]
"""Do `n` jobs' worth of cycles; (seconds in claims, seconds in all)."""
Refill = Callable[[int], Awaitable[None]]
"""Queue `n` more jobs (off the clock)."""


@dataclass(frozen=True, slots=True)
class ClaimFigures:
    queued: int
    fill_per_s: float
    store_claim_per_s: float  # jobs per second of time spent in claim_jobs
    store_cycle_per_s: float  # jobs per second of claim + report
    http_cycle_per_s: float
    http_coordinator_cores: float  # coordinator CPU during the HTTP rounds, in cores


def sum_jobs(first: int, count: int) -> list[NewJob]:
    now = datetime.now(UTC)
    return [
        NewJob(op="sum", payload={"a": i, "b": i + 1}, run_at=now)
        for i in range(first, first + count)
    ]


async def fill(store: Store, count: int) -> float:
    """Queue `count` sum jobs; the seconds it took."""
    started = time.perf_counter()
    for offset in range(0, count, FILL_CHUNK):
        await store.submit_jobs(sum_jobs(offset, min(FILL_CHUNK, count - offset)))
    return time.perf_counter() - started


def bench_registration(batch: int) -> Registration:
    now = datetime.now(UTC)
    return Registration(
        bot_key="bench:claims",
        instance_id="bench-1",
        name="claims",
        version="1.0.0",
        capabilities=("sum",),
        resources={},
        constraints={"max_concurrency": batch},
        meta={},
        token_hash=hashlib.sha256(b"not used: the store is called directly").hexdigest(),
        token_expires_at=now + timedelta(days=1),
        lease_until=now + timedelta(days=1),  # no reaper runs; the bot stays online
        default_max_concurrency=batch,
    )


def sum_reports(jobs: Sequence[tuple[str, int, dict[str, Any]]]) -> list[ReportInput]:
    return [
        ReportInput(job_id, "complete", attempt, {"result": payload["a"] + payload["b"]})
        for job_id, attempt, payload in jobs
    ]


async def store_round(store: Store, bot_id: str, jobs: int, batch: int) -> tuple[float, float]:
    done = 0
    claim_s = 0.0
    started = time.perf_counter()
    for _ in range(jobs // batch + 1):  # bounded: enough calls and one spare
        if done >= jobs:
            break
        before = time.perf_counter()
        claimed = await store.claim_jobs(
            ClaimInput(bot_id, ["sum"], min(batch, jobs - done), JOB_LEASE_TTL_S)
        )
        claim_s += time.perf_counter() - before
        if not claimed:
            raise BenchmarkError(f"claim_jobs returned nothing after {done} jobs")
        outcomes = await store.report(
            bot_id, sum_reports([(job.id, job.attempt, job.payload) for job in claimed])
        )
        if any(outcome is not ReportOutcome.ACCEPTED for outcome in outcomes):
            raise BenchmarkError(f"reports refused: {outcomes}")
        done += len(claimed)
    return claim_s, time.perf_counter() - started


async def http_round(bot: SimBot, jobs: int, batch: int) -> tuple[float, float]:
    done = 0
    started = time.perf_counter()
    for _ in range(jobs // batch + 1):  # bounded, as above
        if done >= jobs:
            break
        claimed = await bot.claim(min(batch, jobs - done), wait_ms=0)
        if not claimed:
            raise BenchmarkError(f"HTTP claim returned nothing after {done} jobs")
        await bot.complete_all(claimed)
        done += len(claimed)
    elapsed = time.perf_counter() - started
    return elapsed, elapsed


async def alternate(
    rounds_by_size: dict[int, tuple[Round, Refill]], claim_jobs: int, rounds: int
) -> dict[int, list[tuple[float, float]]]:
    """Run each size's rounds, alternating sizes (and their order) round by round, each
    followed by its refill."""
    per_round = max(claim_jobs // rounds, 1)
    timings: dict[int, list[tuple[float, float]]] = {size: [] for size in rounds_by_size}
    sizes = list(rounds_by_size)
    for number in range(rounds):
        for size in sizes if number % 2 == 0 else reversed(sizes):
            run, refill = rounds_by_size[size]
            timings[size].append(await run(per_round))
            await refill(per_round)
    return timings


def rate(jobs: int, seconds: Sequence[float]) -> float:
    return median([jobs / value for value in seconds if value > 0])


async def claim_figures(
    workdir: Path, sizes: Sequence[int], claim_jobs: int, batch: int, rounds: int = 10
) -> list[ClaimFigures]:
    per_round = max(claim_jobs // rounds, 1)
    if per_round > min(sizes):
        raise BenchmarkError(f"{min(sizes)} queued jobs are too few for rounds of {per_round}")
    paths = {size: workdir / f"claims-{size}.db" for size in sizes}
    fill_s: dict[int, float] = {}
    with contextlib.ExitStack() as closing:
        rounds_by_size: dict[int, tuple[Round, Refill]] = {}
        async with contextlib.AsyncExitStack() as stack:
            for size in sizes:
                store = open_store(f"sqlite:///{paths[size]}", SystemClock(), exponential_backoff())
                await store.open()
                stack.push_async_callback(store.close)
                fill_s[size] = await fill(store, size)
                bot_id = (await store.register_bot(bench_registration(batch))).bot.id
                rounds_by_size[size] = (
                    bind_store_round(store, bot_id, batch),
                    bind_store_refill(store, size),
                )
            store_timings = await alternate(rounds_by_size, claim_jobs, rounds)
        http_timings, cores = await http_figures(closing, workdir, paths, claim_jobs, batch, rounds)
    return [
        ClaimFigures(
            queued=size,
            fill_per_s=size / fill_s[size],
            store_claim_per_s=rate(per_round, [claim for claim, _ in store_timings[size]]),
            store_cycle_per_s=rate(per_round, [total for _, total in store_timings[size]]),
            http_cycle_per_s=rate(per_round, [total for _, total in http_timings[size]]),
            http_coordinator_cores=cores[size],
        )
        for size in sizes
    ]


def bind_store_round(store: Store, bot_id: str, batch: int) -> Round:
    async def run(jobs: int) -> tuple[float, float]:
        return await store_round(store, bot_id, jobs, batch)

    return run


def bind_store_refill(store: Store, first: int) -> Refill:
    queued = first

    async def refill(jobs: int) -> None:
        nonlocal queued
        await store.submit_jobs(sum_jobs(queued, jobs))
        queued += jobs

    return refill


async def http_figures(
    stack: contextlib.ExitStack,
    workdir: Path,
    paths: dict[int, Path],
    claim_jobs: int,
    batch: int,
    rounds: int,
) -> tuple[dict[int, list[tuple[float, float]]], dict[int, float]]:
    """HTTP rounds against one coordinator per file; and each coordinator's CPU in cores."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        rounds_by_size: dict[int, tuple[Round, Refill]] = {}
        meters: dict[int, CpuMeter] = {}
        busy_s: dict[int, float] = {}
        for size, path in paths.items():
            coordinator = start_coordinator(
                stack, workdir, name=f"coordinator-{size}", db_url=f"sqlite:///{path}"
            )
            bot = SimBot(session, coordinator.api, f"claims-{size}")
            await bot.register(coordinator.enroll_token, max_concurrency=batch)
            admin = AdminClient(session, coordinator)
            rounds_by_size[size] = (bind_http_round(bot, batch), bind_http_refill(admin))
            meters[size] = CpuMeter([coordinator.process.pid])
        timings = await alternate(rounds_by_size, claim_jobs, rounds)
        for size, meter in meters.items():
            busy_s[size] = meter.finish().cpu_s
    # CPU over the time that size's rounds ran (the coordinators idle in between).
    cores = {size: busy_s[size] / sum(total for _, total in timings[size]) for size in paths}
    return timings, cores


def bind_http_round(bot: SimBot, batch: int) -> Round:
    async def run(jobs: int) -> tuple[float, float]:
        return await http_round(bot, jobs, batch)

    return run


def bind_http_refill(admin: AdminClient) -> Refill:
    async def refill(jobs: int) -> None:
        for offset in range(0, jobs, HTTP_BULK):
            count = min(HTTP_BULK, jobs - offset)
            await admin.submit_bulk([sum_job(offset + i, 1) for i in range(count)])

    return refill
