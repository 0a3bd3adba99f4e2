"""Claim throughput with a small and a large queue (issue 7: within 20 % of each other).

The queue is filled straight through the store (`coordinator.store.open_store`, bulk
`submit_jobs` of 10,000 per transaction), which is much faster than HTTP and does not
change what is measured. Then, on the same SQLite file:

- store API: one bot claims `batch` jobs per `claim_jobs` call and completes them in one
  `report` call, until `claim_jobs` jobs are done; the claim calls are timed alone
  (claim rate) and together with the reports (cycle rate);
- HTTP: a coordinator process opens that file, a simulated bot registers and does the
  same cycle over POST /v1/jobs/claim (limit `batch`) and POST /v1/jobs/report.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from benchmarks.fleet import start_coordinator
from benchmarks.harness import BenchmarkError, CpuMeter
from benchmarks.simbot import SimBot
from botfleet.clock import SystemClock
from coordinator.retry import exponential_backoff
from coordinator.store import Store, open_store
from coordinator.store.base import NewJob, Registration, ReportInput, ReportOutcome

FILL_CHUNK = 10_000
JOB_LEASE_TTL_S = 180.0


@dataclass(frozen=True, slots=True)
class ClaimFigures:
    queued: int
    fill_per_s: float
    store_claim_per_s: float  # jobs per second of time spent in claim_jobs
    store_cycle_per_s: float  # jobs per second of claim + report
    http_cycle_per_s: float
    http_coordinator_cores: float  # coordinator CPU during the HTTP cycle, in cores


async def fill(store: Store, count: int) -> float:
    """Queue `count` sum jobs; the seconds it took."""
    started = time.perf_counter()
    now = datetime.now(UTC)
    for offset in range(0, count, FILL_CHUNK):
        jobs = [
            NewJob(op="sum", payload={"a": i, "b": i + 1}, run_at=now)
            for i in range(offset, min(offset + FILL_CHUNK, count))
        ]
        await store.submit_jobs(jobs)
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


async def store_cycles(store: Store, claim_jobs: int, batch: int) -> tuple[float, float]:
    """Claim and complete `claim_jobs` jobs; (claim-only rate, cycle rate) per second."""
    bot_id = (await store.register_bot(bench_registration(batch))).bot.id
    done = 0
    claim_s = 0.0
    started = time.perf_counter()
    for _ in range(claim_jobs // batch + 1):  # bounded: enough rounds and one spare
        if done >= claim_jobs:
            break
        before = time.perf_counter()
        jobs = await store.claim_jobs(bot_id, ["sum"], batch, JOB_LEASE_TTL_S)
        claim_s += time.perf_counter() - before
        if not jobs:
            raise BenchmarkError(f"claim_jobs returned nothing after {done} jobs")
        outcomes = await store.report(
            bot_id,
            [
                ReportInput(
                    job.id, "complete", job.attempt, {"result": job.payload["a"] + job.payload["b"]}
                )
                for job in jobs
            ],
        )
        if any(outcome is not ReportOutcome.ACCEPTED for outcome in outcomes):
            raise BenchmarkError(f"reports refused: {outcomes}")
        done += len(jobs)
    cycle_s = time.perf_counter() - started
    return done / claim_s, done / cycle_s


async def http_cycles(
    workdir: Path, db_path: Path, claim_jobs: int, batch: int
) -> tuple[float, float]:
    """The same cycle over HTTP against a coordinator on `db_path`; (rate, cores used)."""
    with contextlib.ExitStack() as stack:
        coordinator = start_coordinator(
            stack, workdir, name=f"coordinator-{db_path.stem}", db_url=f"sqlite:///{db_path}"
        )
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
            bot = SimBot(session, coordinator.api, f"claims-{db_path.stem}")
            await bot.register(coordinator.enroll_token, max_concurrency=batch)
            done = 0
            meter = CpuMeter([coordinator.process.pid])
            started = time.perf_counter()
            for _ in range(claim_jobs // batch + 1):  # bounded, as above
                if done >= claim_jobs:
                    break
                jobs = await bot.claim(batch, wait_ms=0)
                if not jobs:
                    raise BenchmarkError(f"HTTP claim returned nothing after {done} jobs")
                await bot.complete_all(jobs)
                done += len(jobs)
            elapsed = time.perf_counter() - started
            usage = meter.finish()
    return done / elapsed, usage.core_fraction


async def claim_figures(workdir: Path, queued: int, claim_jobs: int, batch: int) -> ClaimFigures:
    if claim_jobs * 2 > queued:
        raise BenchmarkError(f"{queued} queued jobs are too few to claim {claim_jobs} twice")
    db_path = workdir / f"claims-{queued}.db"
    store = open_store(f"sqlite:///{db_path}", SystemClock(), exponential_backoff())
    await store.open()
    try:
        fill_s = await fill(store, queued)
        claim_rate, cycle_rate = await store_cycles(store, claim_jobs, batch)
    finally:
        await store.close()
    http_rate, cores = await http_cycles(workdir, db_path, claim_jobs, batch)
    return ClaimFigures(queued, queued / fill_s, claim_rate, cycle_rate, http_rate, cores)
