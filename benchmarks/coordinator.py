"""Claims and completions per second through the coordinator's HTTP API, on SQLite.

Each way of working gets a fresh coordinator process (`python -m coordinator`, a new
SQLite file) with N queued jobs, then W simulated bots claim and complete them as fast
as they can. The way botfleet's bot works (claim 100 + one batch report per claim) is
compared in the same run with the plain alternatives: the same claims reported one
`POST /v1/jobs/{id}/complete` per job, and the plain defaults (claim 5, one report per
job). A benchmark, not a test: it prints figures and asserts nothing about speed.

    .venv/bin/python benchmarks/coordinator.py [--jobs 10000] [--bots 4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

if not __package__:  # run as a script (`make bench`): make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.fleet import AdminClient, FleetCoordinator, start_coordinator, sum_job
from benchmarks.harness import (
    BenchmarkError,
    CpuMeter,
    Table,
    add_output_arguments,
    fmt_core,
    fmt_rate,
    fmt_ratio,
    machine_line,
    ratio,
    sigterm_as_interrupt,
)
from benchmarks.simbot import SimBot
from botfleet.protocol import encode
from botfleet.protocol import messages as m

BULK = 1000  # jobs per POST /v1/jobs/bulk (the contract's maximum)


@dataclass(frozen=True, slots=True)
class Way:
    name: str
    claim_limit: int
    batch_report: bool


WAYS = (
    Way("claim 100 + batch report", 100, True),
    Way("claim 100 + one report per job", 100, False),
    Way("claim 5 + one report per job (seed defaults)", 5, False),
)


@dataclass(frozen=True, slots=True)
class Figures:
    jobs: int
    submit_s: float
    run_s: float
    requests: int
    server_cores: float

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.run_s

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.run_s


async def _fill(admin: AdminClient, count: int) -> float:
    started = time.perf_counter()
    for first in range(0, count, BULK):
        await admin.submit_bulk([sum_job(i, 1) for i in range(first, min(count, first + BULK))])
    return time.perf_counter() - started


async def _work(bot: SimBot, way: Way) -> tuple[int, int]:
    """Claim and complete until the queue is empty; (jobs done, HTTP requests made)."""
    done = requests = 0
    while True:
        jobs = await bot.claim(way.claim_limit, wait_ms=0)
        requests += 1
        if not jobs:
            return done, requests
        if way.batch_report:
            await bot.complete_all(jobs)
            requests += 1
        else:
            # The best case for single reports: all of a claim's reports in flight at once.
            await asyncio.gather(*(_complete(bot, job) for job in jobs))
            requests += len(jobs)
        done += len(jobs)


async def _complete(bot: SimBot, job: m.ClaimedJob) -> None:
    """`POST /v1/jobs/{id}/complete`: the base protocol's one-report-per-job call."""
    body = m.CompleteRequest(
        instance_id=bot.instance_id,
        attempt=job.attempt,
        result={"result": job.payload["a"] + job.payload["b"]},
    )
    headers = {"Authorization": f"Bearer {bot.token}", "Content-Type": "application/json"}
    url = f"{bot.api}/jobs/{job.id}/complete"
    async with bot.session.post(url, data=encode(body), headers=headers) as response:
        if response.status != 200:
            text = await response.text()
            raise BenchmarkError(f"complete {job.id}: HTTP {response.status}: {text[:300]}")


async def measure(coordinator: FleetCoordinator, way: Way, jobs: int, bots: int) -> Figures:
    timeout = aiohttp.ClientTimeout(total=120)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        admin = AdminClient(session, coordinator)
        submit_s = await _fill(admin, jobs)
        workers = [SimBot(session, coordinator.api, f"bench-{i}") for i in range(bots)]
        for worker in workers:
            await worker.register(coordinator.enroll_token, max_concurrency=way.claim_limit)
        meter = CpuMeter([coordinator.process.pid])
        started = time.perf_counter()
        results = await asyncio.gather(*(_work(worker, way) for worker in workers))
        run_s = time.perf_counter() - started
        usage = meter.finish()
        done = sum(count for count, _ in results)
        stats: m.Stats = await admin.stats()
    if done != jobs or stats.jobs.get("succeeded") != jobs:
        raise BenchmarkError(f"{way.name}: {done} done, stats say {stats.jobs}")
    requests = sum(count for _, count in results)
    return Figures(jobs, submit_s, run_s, requests, usage.core_fraction)


async def benchmark(base: Path, jobs: int, bots: int) -> Table:
    table = Table(
        f"botfleet coordinator over HTTP, SQLite: {jobs:,} jobs, {bots} simulated bots",
        ["way", "jobs/s (claim+complete)", "HTTP requests/s", "coordinator CPU", "vs batch"],
    )
    figures: list[Figures] = []
    for index, way in enumerate(WAYS):
        with contextlib.ExitStack() as stack:
            coordinator = start_coordinator(stack, base, name=f"coordinator-{index}")
            result = await measure(coordinator, way, jobs, bots)
        figures.append(result)
        print(f"  {way.name}: {result.jobs_per_s:,.0f} jobs/s", file=sys.stderr, flush=True)
        table.add_row(
            way.name,
            fmt_rate(result.jobs_per_s),
            fmt_rate(result.requests_per_s),
            fmt_core(result.server_cores),
            fmt_ratio(ratio(result.jobs_per_s, figures[0].jobs_per_s)),
        )
    submit_rate = jobs / figures[0].submit_s
    table.notes += [
        f"Submitting (bulk, {BULK} per request) ran at {submit_rate:,.0f} jobs/s.",
        "Client and coordinator share the machine: " + machine_line(),
    ]
    return table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs per way (10000)")
    parser.add_argument("--bots", type=int, default=4, help="simulated bots (4)")
    add_output_arguments(parser, "keep logs and SQLite files here")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.bots < 1:
        parser.error("--jobs and --bots must be at least 1")
    try:
        with sigterm_as_interrupt(), contextlib.ExitStack() as stack:
            if args.workdir is None:
                base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bf-http-")))
            else:
                base = args.workdir
                base.mkdir(parents=True, exist_ok=True)
            table = asyncio.run(benchmark(base, args.jobs, args.bots))
    except (BenchmarkError, OSError, aiohttp.ClientError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; every process started was stopped", file=sys.stderr)
        return 130
    table.print(args.format)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
