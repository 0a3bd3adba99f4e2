"""Claim-and-complete throughput over HTTP: SQLite, PostgreSQL, and two coordinators.

Three set-ups in one run, each on a fresh database: one coordinator on SQLite, one
coordinator on PostgreSQL, and two coordinators sharing one PostgreSQL database; and,
as the floor they are compared with, a raw asyncpg loop (`benchmarks.pg_baseline`:
`--workers` connections claiming `--batch` jobs with FOR UPDATE SKIP LOCKED and
completing them, no HTTP), whose rate is the "of raw" column's 100 %. For
each, `--jobs` `sum` jobs are queued first (POST /v1/jobs/bulk, not timed); then
`--workers` synthetic bots (plain HTTP clients, registered with max_concurrency 100,
spread round-robin over the coordinators) loop `POST /v1/jobs/claim` (limit
`--batch`) and `POST /v1/jobs/report` (the whole batch completed) until the queue is
empty. The clock runs from the first claim to the last report; every job must end
succeeded with result a + b (checked afterwards, outside the clock).

"jobs/s" counts jobs claimed and completed per second (each job is one claim and one
completion); "calls/s" counts HTTP calls. The table quotes medians over `--runs`.
Each PostgreSQL set-up gets its own database `botfleet_bench_<random>`, created on
the server of `--pg-dsn` and dropped afterwards.
Run from the repository root: `python -m benchmarks.postgres`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg

from benchmarks.fleet import AdminClient, FleetCoordinator, sum_job, verify_all_succeeded
from benchmarks.harness import (
    LOCALHOST,
    BenchmarkError,
    Table,
    add_output_arguments,
    fmt_ms,
    fmt_rate,
    free_port,
    machine_line,
    median,
    percentile,
    port_open,
    python_module,
    require_alive,
    sigterm_as_interrupt,
    start_process,
    wait_until,
)
from benchmarks.pg_baseline import raw_loop_seconds
from botfleet.protocol import messages as m
from botfleet.protocol.codec import decode, encode

T = TypeVar("T")
DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
START_TIMEOUT_S = 60.0
BULK_SIZE = 1000


@dataclass(frozen=True, slots=True)
class Setup:
    backend: str  # sqlite or postgresql
    coordinators: int

    @property
    def label(self) -> str:
        if self.backend == RAW:
            return "raw asyncpg SKIP LOCKED loop"
        plural = "s" if self.coordinators > 1 else ""
        name = "SQLite" if self.backend == "sqlite" else "PostgreSQL"
        return f"{name}, {self.coordinators} coordinator{plural}"


RAW = "raw"  # the asyncpg loop without a coordinator
RAW_SETUP = Setup(RAW, 0)
SETUPS = (Setup("sqlite", 1), Setup("postgresql", 1), Setup("postgresql", 2), RAW_SETUP)


@dataclass(frozen=True, slots=True)
class Options:
    jobs: int
    workers: int
    batch: int
    runs: int
    timeout_s: float
    pg_dsn: str
    fmt: str
    workdir: Path | None


@dataclass
class Measurement:
    elapsed_s: float
    calls: int
    claim_s: list[float] = field(default_factory=list)
    report_s: list[float] = field(default_factory=list)


# ---------------------------------------------------------------- databases


def database_dsn(server_dsn: str, database: str) -> str:
    """The DSN of `database` on the server `server_dsn` names (its path replaced)."""
    parts = urlsplit(server_dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


@contextlib.asynccontextmanager
async def fresh_database(server_dsn: str) -> AsyncIterator[str]:
    """A new, empty database for one set-up; dropped (with its connections) afterwards."""
    name = f"botfleet_bench_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(server_dsn, timeout=10)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    try:
        yield database_dsn(server_dsn, name)
    finally:
        admin = await asyncpg.connect(server_dsn, timeout=10)
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await admin.close()


# ---------------------------------------------------------------- processes


def start_coordinators(
    stack: contextlib.ExitStack, workdir: Path, db_url: str, count: int
) -> list[FleetCoordinator]:
    """`count` coordinators on one database, sharing tokens, each on a free port."""
    admin_token = secrets.token_urlsafe(24)
    enroll_token = secrets.token_urlsafe(24)
    started: list[FleetCoordinator] = []
    for index in range(count):
        name = f"coordinator-{index + 1}"
        state_dir = workdir / name
        state_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        args = python_module(
            "coordinator",
            "--host", LOCALHOST, "--port", str(port), "--db", db_url,
            "--state-dir", str(state_dir),
            f"--admin-token={admin_token}", f"--enroll-token={enroll_token}",
            "--log-level", "warning",
        )  # fmt: skip
        process = start_process(stack, name, args, workdir)
        wait_until(
            lambda: port_open(port) or not process.alive(),  # noqa: B023 (waited on here)
            START_TIMEOUT_S,
            f"{name} listening on {port}",
            interval_s=0.02,
        )
        require_alive(process)
        started.append(FleetCoordinator(process, port, admin_token, enroll_token, state_dir))
    return started


# ---------------------------------------------------------------- synthetic bots


class Worker:
    """A bot reduced to its two hot calls: claim a batch, report it completed."""

    def __init__(self, session: aiohttp.ClientSession, coordinator: FleetCoordinator) -> None:
        self._session = session
        self._api = coordinator.api
        self._enroll_token = coordinator.enroll_token
        self._instance_id = secrets.token_hex(8)
        self._bot_id = ""
        self._headers: dict[str, str] = {}

    async def register(self, name: str) -> None:
        request = m.RegisterRequest(
            bot_key=f"bench/{name}",
            instance_id=self._instance_id,
            version="1.0.0",
            capabilities=["sum"],
            constraints={"max_concurrency": 100},
        )
        headers = {"Authorization": f"Bearer {self._enroll_token}"}
        response = await self._call("/bots/register", request, m.RegisterResponse, headers)
        if response.auth is None:
            raise BenchmarkError("register answered without a bot token")
        self._bot_id = response.bot_id
        self._headers = {"Authorization": f"Bearer {response.auth.access_token}"}

    async def run(self, batch: int, measurement: Measurement) -> None:
        claim = m.ClaimRequest(bot_id=self._bot_id, operations=["sum"], limit=batch)
        while True:
            started = time.perf_counter()
            jobs = (await self._call("/jobs/claim", claim, m.ClaimResponse)).jobs
            measurement.claim_s.append(time.perf_counter() - started)
            measurement.calls += 1
            if not jobs:
                return
            reports = [
                m.ReportItem(
                    job_id=job.id,
                    action="complete",
                    attempt=job.attempt,
                    result={"result": job.payload["a"] + job.payload["b"]},
                )
                for job in jobs
            ]
            request = m.BatchReportRequest(instance_id=self._instance_id, reports=reports)
            started = time.perf_counter()
            answer = await self._call("/jobs/report", request, m.BatchReportResponse)
            measurement.report_s.append(time.perf_counter() - started)
            measurement.calls += 1
            refused = [item for item in answer.results if item.status != "accepted"]
            if refused:
                raise BenchmarkError(f"reports refused: {refused[:3]}")

    async def _call(
        self, path: str, body: Any, kind: type[T], headers: dict[str, str] | None = None
    ) -> T:
        for _ in range(100):
            async with self._session.post(
                self._api + path, data=encode(body), headers=headers or self._headers
            ) as response:
                payload = await response.read()
                if response.status in (429, 503):  # shedding load: wait as told
                    await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                    continue
                if response.status >= 300:
                    raise BenchmarkError(f"POST {path}: HTTP {response.status}: {payload[:300]!r}")
                return decode(payload, kind)
        raise BenchmarkError(f"POST {path}: the coordinator kept shedding load")


# ---------------------------------------------------------------- one set-up


async def measure(coordinators: Sequence[FleetCoordinator], options: Options) -> Measurement:
    timeout = aiohttp.ClientTimeout(total=options.timeout_s)
    connector = aiohttp.TCPConnector(limit=0)
    async with (
        aiohttp.ClientSession(timeout=timeout, connector=connector) as session,
        AdminClient.connect(coordinators[0]) as admin,
    ):
        for first in range(0, options.jobs, BULK_SIZE):
            count = min(BULK_SIZE, options.jobs - first)
            await admin.submit_bulk([sum_job(first + i, 1) for i in range(count)])
        workers = [
            Worker(session, coordinators[index % len(coordinators)])
            for index in range(options.workers)
        ]
        for index, worker in enumerate(workers):
            await worker.register(f"worker-{index}")
        measurement = Measurement(elapsed_s=0.0, calls=0)
        started = time.perf_counter()
        await asyncio.wait_for(
            asyncio.gather(*[worker.run(options.batch, measurement) for worker in workers]),
            options.timeout_s,
        )
        measurement.elapsed_s = time.perf_counter() - started
        await verify_all_succeeded(admin, options.jobs)
    return measurement


async def run_setup(setup: Setup, workdir: Path, options: Options) -> Measurement:
    with contextlib.ExitStack() as stack:
        if setup.backend == "sqlite":
            coordinators = start_coordinators(
                stack, workdir, f"sqlite:///{workdir / 'botfleet.db'}", setup.coordinators
            )
            return await measure(coordinators, options)
        async with fresh_database(options.pg_dsn) as dsn:
            if setup.backend == RAW:
                elapsed = await raw_loop_seconds(dsn, options.jobs, options.workers, options.batch)
                return Measurement(elapsed_s=elapsed, calls=0)
            try:
                coordinators = start_coordinators(stack, workdir, dsn, setup.coordinators)
                return await measure(coordinators, options)
            finally:
                stack.close()  # the coordinators leave before their database is dropped


async def benchmark(base: Path, options: Options) -> Table:
    results: dict[Setup, list[Measurement]] = {setup: [] for setup in SETUPS}
    for run in range(options.runs):
        for setup in SETUPS:
            workdir = base / f"run{run + 1}-{setup.backend}-{setup.coordinators}"
            workdir.mkdir(parents=True, exist_ok=True)
            print(f"run {run + 1}/{options.runs}: {setup.label} …", file=sys.stderr, flush=True)
            results[setup].append(await run_setup(setup, workdir, options))
    table = Table(
        f"Claim + complete over HTTP: {options.jobs:,} jobs, {options.workers} workers, "
        f"batches of {options.batch}",
        [
            "set-up",
            "jobs/s",
            "of raw",
            "calls/s",
            "claim p50",
            "claim p95",
            "report p50",
            "report p95",
        ],
    )
    raw_rates = [options.jobs / r.elapsed_s for r in results[RAW_SETUP]]
    for setup, runs in results.items():
        rates = [options.jobs / r.elapsed_s for r in runs]
        # Each run's rate against the raw loop's of the same run, then the median.
        ratios = [rate / raw_rate for rate, raw_rate in zip(rates, raw_rates, strict=True)]
        table.add_row(
            setup.label,
            fmt_rate(median(rates)),
            f"{median(ratios):.0%}",
            fmt_rate(median([r.calls / r.elapsed_s for r in runs]) if runs[0].calls else math.nan),
            fmt_ms(median([percentile(r.claim_s, 50) for r in runs])),
            fmt_ms(median([percentile(r.claim_s, 95) for r in runs])),
            fmt_ms(median([percentile(r.report_s, 50) for r in runs])),
            fmt_ms(median([percentile(r.report_s, 95) for r in runs])),
        )
    table.notes += [
        f"Medians over {options.runs} run(s). jobs/s: jobs claimed and completed per second.",
        "of raw: jobs/s against the raw asyncpg loop of the same run (same jobs, workers "
        "and batch; one connection per worker, no HTTP): the target for two coordinators "
        "on one PostgreSQL is at least 50 %.",
        "Client, coordinators and PostgreSQL share the machine: " + machine_line(),
    ]
    return table


# ---------------------------------------------------------------- command line


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs per set-up (10000)")
    parser.add_argument("--workers", type=int, default=4, help="synthetic bots (4)")
    parser.add_argument("--batch", type=int, default=100, help="claim limit, 1..100 (100)")
    parser.add_argument("--runs", type=int, default=1, help="medians over runs (1)")
    parser.add_argument("--timeout", type=float, default=600, help="per set-up, seconds")
    parser.add_argument(
        "--pg-dsn",
        default=DEFAULT_PG_DSN,
        help=f"a PostgreSQL server where databases may be created ({DEFAULT_PG_DSN})",
    )
    add_output_arguments(parser, "keep logs and SQLite files here")
    args = parser.parse_args(argv)
    for name in ("jobs", "workers", "runs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if not 1 <= args.batch <= 100:
        parser.error("--batch must be 1..100")
    return Options(
        args.jobs,
        args.workers,
        args.batch,
        args.runs,
        args.timeout,
        args.pg_dsn,
        args.format,
        args.workdir,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    try:
        with sigterm_as_interrupt(), contextlib.ExitStack() as stack:
            if options.workdir is None:
                base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bf-pg-")))
            else:
                base = options.workdir
                base.mkdir(parents=True, exist_ok=True)
            table = asyncio.run(benchmark(base, options))
    except (BenchmarkError, OSError, asyncpg.PostgresError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; every process started was stopped", file=sys.stderr)
        return 130
    table.print(options.fmt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
