"""End to end through real processes: jobs per second through a coordinator and its bots, and
submit-to-result latency on an idle system.

A SQLite coordinator (`python -m coordinator`) and `--bots` bots (`python -m bot`), once
with the default bot settings and once with a tuned setting, in the same run and on the
same machine. Per run and per setting, on a fresh coordinator:

1. throughput: with the bots registered and idle, `--jobs` `sum` jobs are submitted
   (POST /v1/jobs/bulk, 1000 per request); the clock runs from the first submission
   until GET /v1/stats shows them all succeeded. Every result is then read back and
   checked (a + b), outside the clock;
2. latency: on the now idle system, `--latency-jobs` jobs one at a time: POST /v1/jobs,
   then GET /v1/jobs/{id}?wait_ms=5000 until it is terminal; p50 and p99 after
   `--warmup-jobs` uncounted ones.

The table quotes medians over `--runs`; the settings alternate which goes first. The CPU
rows are the CPU time of the coordinator and of the bots during the throughput phase,
per job.

`--compare settings` (the default) sets the default bot settings against a tuned bot.
`--compare report-on-claim` keeps the bots' defaults and sets a coordinator that offers
every extension but `report_on_claim` (each report its own request) against one that
offers it (a report rides on the next claim).
Run from the repository root: `python -m benchmarks.end_to_end` (add `--jobs 1000` for a
quick look).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.fleet import (
    AdminClient,
    FleetCoordinator,
    start_bot,
    start_coordinator,
    sum_job,
    sum_result_ok,
    verify_all_succeeded,
    wait_for_succeeded,
)
from benchmarks.harness import (
    BenchmarkError,
    ChildProcess,
    CpuMeter,
    Table,
    add_fleet_run_arguments,
    fmt_ms,
    fmt_rate,
    fmt_ratio,
    load_line,
    machine_line,
    medians,
    percentile,
    ratio,
    require_alive,
    run_benchmark,
)
from botfleet.protocol import messages as m

BULK_SIZE = 1000  # the most one POST /v1/jobs/bulk takes
LATENCY_WAIT_MS = 5000
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
# The protocol's default bot settings, spelled out so the table says what was measured.
SEED_DEFAULTS = {"MAX_CONCURRENCY": "2", "CLAIM_BATCH_SIZE": "5"}
TUNED = {"MAX_CONCURRENCY": "32"}

WITHOUT_REPORT_ON_CLAIM = ",".join(f for f in m.ALL_FEATURES if f != m.FEATURE_REPORT_ON_CLAIM)

THROUGHPUT = "jobs_per_s"
P50 = "latency_p50_s"
P99 = "latency_p99_s"
SERVER_CPU = "coordinator_cpu_s_per_job"
BOTS_CPU = "bots_cpu_s_per_job"


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    bot_env: dict[str, str]
    server_args: tuple[str, ...] = ()

    def describe(self) -> str:
        env = " ".join(f"{key}={value}" for key, value in self.bot_env.items()) or "no variables"
        return f"{env}; coordinator {' '.join(self.server_args) or 'defaults'}"


@dataclass(frozen=True, slots=True)
class Options:
    jobs: int
    bots: int
    latency_jobs: int
    warmup_jobs: int
    runs: int
    timeout_s: float
    fmt: str
    workdir: Path | None
    baseline: Setting
    tuned: Setting


# ---------------------------------------------------------------- one measurement


async def wait_bots_online(
    client: AdminClient, bots: Sequence[ChildProcess], timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while (await client.stats()).bots.get("online", 0) < len(bots):
        for bot in bots:
            require_alive(bot)
        if time.monotonic() > deadline:
            raise BenchmarkError(f"{len(bots)} bots not online after {timeout_s:.0f} s")
        await asyncio.sleep(0.02)


async def throughput(
    client: AdminClient, jobs: int, timeout_s: float, server_pid: int, bot_pids: list[int]
) -> dict[str, float]:
    """Jobs per second from the first submission to the last success, and the CPU per job
    of the coordinator and of the bots meanwhile; results checked."""
    batch = [sum_job(i, 2 * i + 1) for i in range(jobs)]
    server_cpu, bots_cpu = CpuMeter([server_pid]), CpuMeter(bot_pids)
    started = time.perf_counter()
    ids: list[str] = []
    for offset in range(0, jobs, BULK_SIZE):
        ids += await client.submit_bulk(batch[offset : offset + BULK_SIZE])
    await wait_for_succeeded(client, ids, timeout_s)
    elapsed = time.perf_counter() - started
    figures = {
        THROUGHPUT: jobs / elapsed,
        SERVER_CPU: server_cpu.finish().cpu_s / jobs,
        BOTS_CPU: bots_cpu.finish().cpu_s / jobs,
    }
    await verify_all_succeeded(client, jobs)
    return figures


async def submit_to_result(client: AdminClient, n: int, timeout_s: float) -> float:
    """Seconds from POST /v1/jobs to the succeeded job in hand (a waiting GET)."""
    started = time.perf_counter()
    job_id = await client.submit(sum_job(n, 7))
    deadline = time.monotonic() + timeout_s
    job: m.JobView = await client.job(job_id, wait_ms=LATENCY_WAIT_MS)
    while job.state not in TERMINAL:
        if time.monotonic() > deadline:
            raise BenchmarkError(f"latency job {job_id} still {job.state} after {timeout_s} s")
        job = await client.job(job_id, wait_ms=LATENCY_WAIT_MS)
    elapsed = time.perf_counter() - started
    if not sum_result_ok(job):
        raise BenchmarkError(f"latency job {job_id} ended {job.state}: {job.result} {job.error}")
    return elapsed


async def measure(workdir: Path, setting: Setting, options: Options) -> dict[str, float]:
    with contextlib.ExitStack() as stack:
        coordinator: FleetCoordinator = start_coordinator(
            stack, workdir, extra_args=setting.server_args
        )
        bots = [
            start_bot(stack, workdir, coordinator, f"bench-{n}", env=setting.bot_env)
            for n in range(options.bots)
        ]
        async with AdminClient.connect(coordinator) as client:
            await wait_bots_online(client, bots, options.timeout_s)
            figures = await throughput(
                client,
                options.jobs,
                options.timeout_s,
                coordinator.process.pid,
                [bot.pid for bot in bots],
            )
            samples = [
                await submit_to_result(client, n, options.timeout_s)
                for n in range(options.warmup_jobs + options.latency_jobs)
            ][options.warmup_jobs :]
        for bot in bots:
            require_alive(bot)
    return figures | {P50: percentile(samples, 50), P99: percentile(samples, 99)}


# ---------------------------------------------------------------- the table


def comparison_table(
    baseline: dict[str, float], tuned: dict[str, float], options: Options
) -> Table:
    table = Table(
        f"botfleet end to end: SQLite coordinator + {options.bots} bots, medians of "
        f"{options.runs} run(s), {options.jobs:,} jobs, latency over {options.latency_jobs} jobs",
        ["measure", options.baseline.name, options.tuned.name, "÷"],
    )
    rows = (
        (f"throughput, {options.jobs:,} sum jobs", THROUGHPUT, fmt_rate),
        ("↳ coordinator CPU per job", SERVER_CPU, fmt_ms),
        ("↳ bots' CPU per job", BOTS_CPU, fmt_ms),
        ("submit-to-result p50, idle", P50, fmt_ms),
        ("submit-to-result p99, idle", P99, fmt_ms),
    )
    for label, key, fmt in rows:
        ours, theirs = tuned.get(key, math.nan), baseline.get(key, math.nan)
        table.add_row(label, fmt(theirs), fmt(ours), fmt_ratio(ratio(ours, theirs)))
    table.notes.append(
        f"{options.baseline.name}: {options.baseline.describe()}; "
        f"{options.tuned.name}: {options.tuned.describe()}"
    )
    table.notes.append(
        "÷: the second column over the first; the coordinator's register answer sets the "
        "claim batch (claim_batch_size 5) and the extensions it offers; throughput runs "
        "from the first submission to the last success, bots already registered"
    )
    table.notes.append(f"machine: {machine_line()}")
    return table


def run_line(run: int, setting: Setting, figures: dict[str, float]) -> str:
    return (
        f"run {run + 1} {setting.name}: {fmt_rate(figures[THROUGHPUT])}, "
        f"p50 {fmt_ms(figures[P50])}, p99 {fmt_ms(figures[P99])}"
    )


def benchmark(base: Path, options: Options) -> Table:
    results: dict[str, list[dict[str, float]]] = {options.baseline.name: [], options.tuned.name: []}
    load_before = load_line()
    for run in range(options.runs):
        order = (options.baseline, options.tuned)
        for setting in order if run % 2 == 0 else reversed(order):
            run_dir = base / f"run-{run + 1}-{setting.name.replace(' ', '-')}"
            run_dir.mkdir(parents=True)
            figures = asyncio.run(measure(run_dir, setting, options))
            results[setting.name].append(figures)
            print(run_line(run, setting, figures), flush=True)
    table = comparison_table(
        medians(results[options.baseline.name]), medians(results[options.tuned.name]), options
    )
    table.notes.append(f"before: {load_before}; after: {load_line()}")
    return table


# ---------------------------------------------------------------- command line


def parse_env(parser: argparse.ArgumentParser, flag: str, items: list[str]) -> dict[str, str]:
    env = dict(item.split("=", 1) for item in items if "=" in item)
    if len(env) != len(items):
        parser.error(f"{flag} takes NAME=VALUE")
    return env


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=10_000, help="throughput jobs (10000)")
    parser.add_argument("--bots", type=int, default=2, help="bot processes (2)")
    add_fleet_run_arguments(parser)
    defaults = " ".join(f"{k}={v}" for k, v in SEED_DEFAULTS.items())
    tuned = " ".join(f"{k}={v}" for k, v in TUNED.items())
    parser.add_argument(
        "--compare",
        choices=["settings", "report-on-claim"],
        default="settings",
        help="what the two columns differ in (settings: the bots' environment)",
    )
    parser.add_argument(
        "--baseline-env",
        action="append",
        metavar="NAME=VALUE",
        help=f"bot environment of the baseline (default: {defaults})",
    )
    parser.add_argument(
        "--tuned-env",
        action="append",
        metavar="NAME=VALUE",
        help=f"bot environment of the alternative (default: {tuned})",
    )
    parser.add_argument(
        "--tuned-claim-batch",
        type=int,
        metavar="N",
        help="the coordinator's claim_batch_size for the alternative (default: its own, 5); "
        "with a large MAX_CONCURRENCY, what caps the jobs per claim",
    )
    args = parser.parse_args(argv)
    if args.tuned_claim_batch is not None and args.tuned_claim_batch < 1:
        parser.error("--tuned-claim-batch must be at least 1")
    for name in ("jobs", "bots", "latency_jobs", "runs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup_jobs < 0:
        parser.error("--warmup-jobs must not be negative")
    baseline = parse_env(parser, "--baseline-env", args.baseline_env or [])
    tuned_env = parse_env(parser, "--tuned-env", args.tuned_env or [])
    return Options(
        jobs=args.jobs,
        bots=args.bots,
        latency_jobs=args.latency_jobs,
        warmup_jobs=args.warmup_jobs,
        runs=args.runs,
        timeout_s=args.timeout,
        fmt=args.format,
        workdir=args.workdir,
        **_settings(args.compare, baseline, tuned_env, args.tuned_claim_batch),
    )


def _settings(
    compare: str, baseline: dict[str, str], tuned: dict[str, str], tuned_batch: int | None = None
) -> dict[str, Setting]:
    if compare == "report-on-claim":
        env = baseline or dict(SEED_DEFAULTS)
        return {
            "baseline": Setting("reports alone", env, ("--features", WITHOUT_REPORT_ON_CLAIM)),
            "tuned": Setting("report_on_claim", env),
        }
    return {
        "baseline": Setting("seed defaults", baseline or dict(SEED_DEFAULTS)),
        "tuned": Setting(
            "tuned",
            tuned or dict(TUNED),
            ("--claim-batch-size", str(tuned_batch)) if tuned_batch is not None else (),
        ),
    }


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    return run_benchmark(options, benchmark, prefix="bf-e2e-")


if __name__ == "__main__":
    sys.exit(main())
