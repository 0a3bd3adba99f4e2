"""What job logs cost: per line in a handler, and in throughput of a whole fleet.

1. per line: a handler's 100,000 lines (`--lines`) into the bot's log buffer, in this
   process, by `job.log` and by the `logging` module inside the job's context, and the
   same lines taken out again in batches as the log loop does (the shipping side);
2. throughput: through real processes (a SQLite coordinator and `--bots` bots), `sum`
   jobs that each log 10 lines (`sum_logged`, benchmarks/logging_ops.py) against plain
   `sum` jobs, in the same run on the same fleet, alternating which goes first, for
   `--rounds` rounds of `--jobs` jobs each; the table quotes the medians.

Run from the repository root: `python -m benchmarks.logs` (add `--jobs 2000` for a quick
look).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.end_to_end import wait_bots_online
from benchmarks.fleet import AdminClient, start_bot, start_coordinator, wait_for_succeeded
from benchmarks.harness import (
    Table,
    add_output_arguments,
    fmt_rate,
    load_line,
    machine_line,
    median,
    require_alive,
    run_benchmark,
)
from bot.joblog.buffer import LogBuffer
from bot.joblog.capture import JobLog, capturing, install_handler
from bot.joblog.shipping import BATCH_CHARS, BATCH_LINES, MAX_ROUND_LINES
from bot.state import Job
from botfleet.clock import SystemClock
from botfleet.protocol import encode
from botfleet.protocol import joblogs as wire
from botfleet.protocol import messages as m

BULK_SIZE = 1000
WITHOUT_LOGS = ",".join(f for f in m.ALL_FEATURES if f not in (m.FEATURE_LOGS, m.FEATURE_LOGS_BULK))
PLUGIN = "benchmarks.logging_ops"
LINES_PER_JOB = 10


@dataclass(frozen=True, slots=True)
class Options:
    lines: int
    jobs: int
    bots: int
    rounds: int
    timeout_s: float
    capture_only: bool
    fmt: str
    workdir: Path | None


# ---------------------------------------------------------------- per line


def per_line_us(lines: int) -> dict[str, float]:
    """µs per line: written by job.log, by logging, and taken and encoded for sending."""
    buffer = LogBuffer(SystemClock(), capacity=lines * 2 + 1)
    job = Job("job_bench", "bench", {}, on_log=buffer.write)
    started = time.perf_counter()
    for n in range(lines):
        job.log(f"step {n} of the benchmark handler")
    by_job_log = (time.perf_counter() - started) / lines * 1e6

    install_handler()
    root = logging.getLogger()
    previous = root.level
    root.setLevel(logging.INFO)
    quiet = [h for h in root.handlers if not isinstance(h, type(install_handler()))]
    for handler in quiet:  # only the job log handler, not the console
        root.removeHandler(handler)
    handler_log = logging.getLogger("bench.handler")
    try:
        with capturing(JobLog("job_bench", 1, buffer)):
            started = time.perf_counter()
            for n in range(lines):
                handler_log.info("step %d of the benchmark handler", n)
            by_logging = (time.perf_counter() - started) / lines * 1e6
    finally:
        for handler in quiet:
            root.addHandler(handler)
        root.setLevel(previous)

    started = time.perf_counter()
    shipped = 0
    while len(buffer):
        for batch in buffer.take(MAX_ROUND_LINES, BATCH_LINES, BATCH_CHARS):
            request = wire.LogBatch(
                instance_id="inst",
                attempt=batch.attempt,
                lines=batch.lines,
            )
            encode(request)
            shipped += len(batch.lines)
    by_shipping = (time.perf_counter() - started) / shipped * 1e6
    return {"job.log": by_job_log, "logging": by_logging, "take + encode": by_shipping}


# ---------------------------------------------------------------- throughput


async def one_phase(
    client: AdminClient, lines: int, jobs: int, done_before: int, timeout_s: float
) -> float:
    payload = {"b": 1, "lines": lines}
    batch = [m.SubmitJob(op="sum_logged", payload={"a": i, **payload}) for i in range(jobs)]
    started = time.perf_counter()
    ids: list[str] = []
    for offset in range(0, jobs, BULK_SIZE):
        ids += await client.submit_bulk(batch[offset : offset + BULK_SIZE])
    await wait_for_succeeded(client, ids, timeout_s, total=done_before + jobs)
    return jobs / (time.perf_counter() - started)


async def fleet_throughput(workdir: Path, options: Options) -> dict[int, list[float]]:
    rates: dict[int, list[float]] = {0: [], LINES_PER_JOB: []}
    with contextlib.ExitStack() as stack:
        extra = (f"--features={WITHOUT_LOGS}",) if options.capture_only else ()
        coordinator = start_coordinator(stack, workdir, extra_args=extra)
        bots = [
            start_bot(stack, workdir, coordinator, f"logs-{n}", env={"BOT_PLUGINS": PLUGIN})
            for n in range(options.bots)
        ]
        async with AdminClient.connect(coordinator) as client:
            await wait_bots_online(client, bots, options.timeout_s)
            done = 0
            for round_ in range(options.rounds):
                order = (0, LINES_PER_JOB) if round_ % 2 == 0 else (LINES_PER_JOB, 0)
                for lines in order:
                    rate = await one_phase(client, lines, options.jobs, done, options.timeout_s)
                    done += options.jobs
                    rates[lines].append(rate)
        for bot in bots:
            require_alive(bot)
    return rates


def benchmark(workdir: Path, options: Options) -> Table:
    lines = per_line_us(options.lines)
    rates = asyncio.run(fleet_throughput(workdir, options))
    plain, logged = median(rates[0]), median(rates[LINES_PER_JOB])
    table = Table(
        f"botfleet job logs: {options.lines:,} lines in one process; SQLite coordinator + "
        f"{options.bots} bots, {options.rounds} round(s) of {options.jobs:,} jobs per kind"
        + (" (capture only: the coordinator takes no lines)" if options.capture_only else ""),
        ["measure", "value"],
    )
    for name, value in lines.items():
        table.add_row(f"µs per line, {name}", f"{value:.2f}")
    table.add_row("sum jobs/s, no log lines", fmt_rate(plain))
    table.add_row("sum jobs/s, 10 log lines each", fmt_rate(logged))
    table.add_row("slower with logs", f"{(1 - logged / plain) * 100:.1f} %")
    table.add_row(
        "rounds (jobs/s, none | logged)",
        " ".join(f"{a:.0f}|{b:.0f}" for a, b in zip(rates[0], rates[LINES_PER_JOB], strict=True)),
    )
    table.add_row("machine", machine_line())
    table.add_row("load", load_line())
    return table


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.logs", description=__doc__)
    parser.add_argument("--lines", type=int, default=100_000, help="per-line run (100000)")
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs per phase (10000)")
    parser.add_argument("--bots", type=int, default=2, help="bot processes (2)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of both kinds (3)")
    parser.add_argument("--timeout", type=float, default=600, help="per phase, seconds")
    parser.add_argument(
        "--capture-only",
        action="store_true",
        help="a coordinator without the logs feature: the bots capture lines and drop them "
        "(the bots' share of the cost)",
    )
    add_output_arguments(parser, "keep logs and databases here")
    args = parser.parse_args(argv)
    return Options(
        lines=args.lines,
        jobs=args.jobs,
        bots=args.bots,
        rounds=args.rounds,
        timeout_s=args.timeout,
        capture_only=args.capture_only,
        fmt=args.format,
        workdir=args.workdir,
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_benchmark(parse_args(argv), benchmark, "botfleet-logs-")


if __name__ == "__main__":
    sys.exit(main())
