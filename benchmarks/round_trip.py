"""What one bot round trip costs, and the ceiling it puts on throughput.

A bot with the contract's defaults (`MAX_CONCURRENCY` 2, claims no more than its free
slots) sends one request per two jobs: a claim of 2 carrying the 2 previous reports
(`report_on_claim`). This benchmark measures the CPU that round trip costs, server and
client, on asyncio's event loop and on uvloop, in one run:

- bare aiohttp: the same request bytes to a server that only reads them and answers
  (`benchmarks/bare_server.py`): the floor no aiohttp coordinator can go below;
- botfleet: the real coordinator (`python -m coordinator`, SQLite), the claim of 2 jobs
  carrying the 2 previous reports, from a simulated bot (no agent work on the client);
- the store alone, in this process: the same claim and reports, no HTTP.

From each it derives the ceiling: the jobs per second the machine's cores would reach
doing nothing but these round trips (cores x 2 jobs / CPU per round trip, both sides).
A benchmark, not a test: it prints figures and asserts nothing about speed.

    .venv/bin/python -m benchmarks.round_trip [--round-trips 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from benchmarks.fleet import AdminClient, start_coordinator, sum_job
from benchmarks.harness import (
    LOCALHOST,
    BenchmarkError,
    CpuMeter,
    Table,
    add_output_arguments,
    free_port,
    machine_line,
    port_open,
    python_module,
    require_alive,
    run_benchmark,
    start_process,
    wait_until,
)
from benchmarks.scale_claims import bench_registration
from benchmarks.simbot import SimBot
from botfleet import eventloop
from botfleet.clock import SystemClock
from botfleet.protocol import messages as m
from botfleet.protocol.codec import decode, encode
from coordinator.store import open_store
from coordinator.store.base import ClaimInput, NewJob, ReportInput

JOBS_PER_TRIP = 2  # MAX_CONCURRENCY's default: a bot claims no more than its free slots
LOOPS = ("asyncio", "uvloop")
WARMUP = 200


@dataclass(frozen=True, slots=True)
class Options:
    round_trips: int
    fmt: str
    workdir: Path | None


@dataclass(frozen=True, slots=True)
class Cost:
    """CPU seconds per round trip on each side, and wall seconds per round trip."""

    server_s: float
    client_s: float
    wall_s: float

    def ceiling(self, cores: int) -> float:
        return cores * JOBS_PER_TRIP / (self.server_s + self.client_s)


async def timed(
    server_pids: Sequence[int], trips: int, trip: Callable[[], Awaitable[None]]
) -> Cost:
    for _ in range(WARMUP):
        await trip()
    meter = CpuMeter(server_pids)
    client_started = time.process_time()
    started = time.perf_counter()
    for _ in range(trips):
        await trip()
    wall_s = time.perf_counter() - started
    client_s = time.process_time() - client_started
    return Cost(meter.finish().cpu_s / trips, client_s / trips, wall_s / trips)


def sample_claim(bot_id: str, instance_id: str, held: Sequence[m.ClaimedJob]) -> m.ClaimRequest:
    """A claim of 2 carrying the reports of the jobs `held` (the previous claim's)."""
    reports = [
        m.ReportItem(job_id=job.id, action="complete", attempt=job.attempt, result={"result": 3})
        for job in held
    ]
    return m.ClaimRequest(
        bot_id=bot_id,
        operations=["sum"],
        limit=JOBS_PER_TRIP,
        wait_ms=0,
        instance_id=instance_id,
        reports=reports,
    )


# ---------------------------------------------------------------- bare aiohttp


async def bare_cost(pid: int, port: int, trips: int) -> Cost:
    held = [
        m.ClaimedJob(
            id=f"job_{n:016x}", op="sum", payload={"a": n, "b": 1}, lease_until="x", attempt=1
        )
        for n in range(JOBS_PER_TRIP)
    ]
    body = encode(sample_claim("bot_" + "0" * 16, "i" * 16, held))
    url = f"http://{LOCALHOST}:{port}/v1/jobs/claim"
    headers = {"Authorization": "Bearer " + "t" * 60, "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:

        async def trip() -> None:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()

        return await timed([pid], trips, trip)


def measure_bare(base: Path, loop: str, trips: int) -> Cost:
    with contextlib.ExitStack() as stack:
        port = free_port()
        args = python_module("benchmarks.bare_server", "--port", str(port))
        env = {eventloop.ENV_VAR: loop}
        server = start_process(stack, f"bare-{loop}", args, base, env)
        wait_until(lambda: port_open(port) or not server.alive(), 30, f"bare server on {port}")
        require_alive(server)
        return eventloop.run(bare_cost(server.pid, port, trips), eventloop.loop_factory(env)[1])


# ---------------------------------------------------------------- botfleet


async def botfleet_cost(pid: int, admin: AdminClient, bot: SimBot, trips: int) -> Cost:
    jobs = [sum_job(i, 1) for i in range(JOBS_PER_TRIP * (trips + WARMUP + 1))]
    for first in range(0, len(jobs), 1000):
        await admin.submit_bulk(jobs[first : first + 1000])
    headers = {"Authorization": f"Bearer {bot.token}", "Content-Type": "application/json"}
    url = f"{bot.api}/jobs/claim"
    held: list[m.ClaimedJob] = []

    async def trip() -> None:
        nonlocal held
        body = encode(sample_claim(bot.bot_id, bot.instance_id, held))
        async with bot.session.post(url, data=body, headers=headers) as response:
            payload = await response.read()
            if response.status != 200:
                raise BenchmarkError(f"claim: HTTP {response.status}: {payload[:300]!r}")
        answer = decode(payload, m.ClaimResponse)
        if len(answer.jobs) != JOBS_PER_TRIP:
            raise BenchmarkError(f"a claim of {JOBS_PER_TRIP} got {len(answer.jobs)} jobs")
        held = answer.jobs

    return await timed([pid], trips, trip)


async def botfleet_run(base: Path, loop: str, trips: int) -> Cost:
    with contextlib.ExitStack() as stack:
        env = {eventloop.ENV_VAR: loop}
        coordinator = start_coordinator(stack, base, name=f"coordinator-{loop}", env=env)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            admin = AdminClient(session, coordinator)
            bot = SimBot(session, coordinator.api, f"round-trip-{loop}")
            await bot.register(coordinator.enroll_token, max_concurrency=JOBS_PER_TRIP)
            return await botfleet_cost(coordinator.process.pid, admin, bot, trips)


def measure_botfleet(base: Path, loop: str, trips: int) -> Cost:
    _, factory = eventloop.loop_factory({eventloop.ENV_VAR: loop})
    return eventloop.run(botfleet_run(base, loop, trips), factory)


# ---------------------------------------------------------------- the store alone


async def store_cost(base: Path, trips: int) -> Cost:
    """The coordinator's store call of one round trip (report 2 and claim 2), in this
    process: all of their CPU is ours, so it shows as server CPU."""
    clock = SystemClock()
    store = open_store(str(base / "store-only.db"), clock, lambda attempt: 1.0)
    await store.open()
    try:
        now = clock.now()
        bot = await store.register_bot(bench_registration(JOBS_PER_TRIP))
        bot_id = bot.bot.id
        count = JOBS_PER_TRIP * (trips + WARMUP + 1)
        for first in range(0, count, 1000):
            batch = min(1000, count - first)
            await store.submit_jobs(
                [NewJob(op="sum", payload={"a": 1, "b": 2}, run_at=now)] * batch
            )
        held: list[tuple[str, int]] = []

        async def trip() -> None:
            nonlocal held
            # As the coordinator does on the busy path: the reports and the claim in
            # one transaction.
            reports = [
                ReportInput(job_id, "complete", attempt, {"result": 3}) for job_id, attempt in held
            ]
            _, jobs = await store.report_and_claim(
                ClaimInput(bot_id, ["sum"], JOBS_PER_TRIP, 180.0), reports
            )
            if jobs is None or len(jobs) != JOBS_PER_TRIP:
                raise BenchmarkError(f"store claim of {JOBS_PER_TRIP} got {jobs}")
            held = [(job.id, job.attempt) for job in jobs]

        cost = await timed([], trips, trip)
        return Cost(cost.client_s, 0.0, cost.wall_s)  # this process is the server here
    finally:
        await store.close()


# ---------------------------------------------------------------- the table


def benchmark(base: Path, options: Options) -> Table:
    cores = os.cpu_count() or 1
    table = Table(
        f"One round trip of a default bot (a claim of {JOBS_PER_TRIP} carrying "
        f"{JOBS_PER_TRIP} reports), {options.round_trips:,} round trips each",
        ["what", "loop", "server CPU", "client CPU", "wall", f"ceiling on {cores} cores"],
    )
    rows: list[tuple[str, str, Cost]] = []
    for loop in LOOPS:
        try:
            eventloop.loop_factory({eventloop.ENV_VAR: loop})
        except eventloop.EventLoopError as exc:
            table.notes.append(f"{loop}: not measured ({exc})")
            continue
        rows.append(("bare aiohttp", loop, measure_bare(base, loop, options.round_trips)))
        print(f"  bare aiohttp on {loop}: done", file=sys.stderr, flush=True)
        rows.append(
            ("botfleet coordinator", loop, measure_botfleet(base, loop, options.round_trips))
        )
        print(f"  botfleet on {loop}: done", file=sys.stderr, flush=True)
    rows.append(("store calls alone", "-", asyncio.run(store_cost(base, options.round_trips))))
    for what, loop, cost in rows:
        table.add_row(
            what,
            loop,
            f"{cost.server_s * 1e6:,.0f} µs",
            f"{cost.client_s * 1e6:,.0f} µs" if cost.client_s else "-",
            f"{cost.wall_s * 1e6:,.0f} µs",
            f"{cost.ceiling(cores):,.0f} jobs/s",
        )
    table.notes += [
        "CPU and wall time per round trip. Ceiling: the jobs per second if every core did "
        f"nothing but these round trips ({cores} cores x {JOBS_PER_TRIP} jobs / (server + "
        "client CPU)); the client here is a simulated bot, so a real bot's own work comes "
        "on top. The store row is one process doing the store's share alone.",
        "machine: " + machine_line(),
    ]
    return table


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--round-trips", type=int, default=3000, help="per row (3000)")
    add_output_arguments(parser, "keep logs and databases here")
    args = parser.parse_args(argv)
    if args.round_trips < 1:
        parser.error("--round-trips must be at least 1")
    return Options(args.round_trips, args.format, args.workdir)


def main(argv: Sequence[str] | None = None) -> int:
    return run_benchmark(parse_args(argv), benchmark, "bf-round-trip-")


if __name__ == "__main__":
    raise SystemExit(main())
