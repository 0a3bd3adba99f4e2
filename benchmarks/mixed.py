"""A queue of trivial jobs with a few long ones, botfleet against Celery in one run.

Each system runs two workers of two slots (`--slots`): botfleet a SQLite coordinator and
two bots (`MAX_CONCURRENCY` 2, the bot's default prefetch unless BOT_PREFETCH or
BOT_PREFETCH_HOLD_MS are set in this environment or given with `--bot-env`); Celery two
workers of its default pool (prefork, `--concurrency 2`) at its default prefetch (4 per
slot) on a private Redis. Every queue goes to a fresh fleet, up and warmed up with
`--warmup-jobs` trivial jobs; the clock starts when the first job of the queue is
submitted (botfleet: bulk requests of 1,000; Celery: an `apply_async` loop). Per run and
system, three queues of one operation, `nap`, which sleeps its payload's `seconds`:

- trivial only: 2,000 jobs of 0 s. Its makespan is the trivial jobs' time at full speed;
- long at random: the same with eight 2-second jobs at random places (the same
  places for both systems in a run);
- long first: the eight long jobs first, then the trivial ones.

Figures, per queue:

- makespan: from the first submission to the end of the last job (its handler's clock);
- lower bound: the larger of the long jobs' work over all slots and the longest job,
  plus the same system's trivial-only makespan in the same run; the ratio of the two.
  botfleet's target: within 10 %;
- waited while another worker was free: per job, the time it spent in one worker's
  buffer (taken from the queue, not started) while another worker ran fewer jobs than
  it has slots; the largest over all jobs, and over the long ones. A job entered a
  bot's buffer when the coordinator recorded the claim of an attempt (its `attempts`
  table, read from the SQLite file after the queue: the API rounds to milliseconds and
  leaves out attempts given back unstarted) and left it when its handler started (`nap`
  answers when), or when that attempt ended if the bot gave the job back unstarted; a
  Celery task entered a worker's buffer when the worker's `task_received` signal fired.
  Which jobs each worker ran, and when, comes from the handlers' start and end times; a
  worker counts as present from the first job it took, and as free once it has run out
  of work, until the end of the queue. botfleet's target: never more than
  BOT_PREFETCH_HOLD_MS plus one claim;
- longest in a buffer: the same without the condition on the other worker.

The table quotes medians over `--runs` (default 3); the systems take turns going first.
`--quick` is a single run. Prints the figures; never asserts them.
Run from the repository root: `python -m benchmarks.mixed`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import (
    Table,
    add_output_arguments,
    code_line,
    load_line,
    machine_line,
    medians,
    run_benchmark,
    start_redis,
)
from benchmarks.mixed_runs import WORKERS, Fleet, Outcome, botfleet_queue, celery_queue
from benchmarks.mixed_timeline import buffer_waits, lower_bound, makespan

SYSTEMS = ("botfleet", "Celery")
TRIVIAL, RANDOM, FIRST = "trivial only", "long at random", "long first"
QUEUES = (TRIVIAL, RANDOM, FIRST)
# The bot's settings the figures depend on, taken from this environment when set.
PASSED_THROUGH = ("BOT_PREFETCH", "BOT_PREFETCH_HOLD_MS")
DEFAULT_HOLD_MS = 500  # PROTOCOL.md's default BOT_PREFETCH_HOLD_MS
TARGET_RATIO = 1.10

MAKESPAN, BOUND, RATIO = "makespan_s", "bound_s", "ratio"
WHILE_FREE, LONG_WHILE_FREE, IN_BUFFER = "while_free_s", "long_while_free_s", "in_buffer_s"
Figures = dict[str, float]


@dataclass(frozen=True, slots=True)
class Options:
    trivial_jobs: int
    long_jobs: int
    long_seconds: float
    runs: int
    seed: int
    fleet: Fleet
    fmt: str
    workdir: Path | None


def queues(options: Options, run: int) -> dict[str, list[float]]:
    """Each queue's jobs in submission order, as seconds of work."""
    total = options.trivial_jobs + options.long_jobs
    places = set(random.Random(options.seed + run).sample(range(total), options.long_jobs))
    long_first = [options.long_seconds] * options.long_jobs + [0.0] * options.trivial_jobs
    return {
        TRIVIAL: [0.0] * options.trivial_jobs,
        RANDOM: [options.long_seconds if n in places else 0.0 for n in range(total)],
        FIRST: long_first,
    }


def figures(outcome: Outcome, seconds: Sequence[float], trivial_s: float, slots: int) -> Figures:
    span = makespan(outcome.traces, outcome.submitted_at)
    result = {MAKESPAN: span}
    long_seconds = [s for s in seconds if s > 0]
    if long_seconds:
        bound = lower_bound(long_seconds, WORKERS * slots, trivial_s)
        result |= {BOUND: bound, RATIO: span / bound}
    waits = buffer_waits(outcome.traces, slots, outcome.submitted_at + span)
    result |= {
        WHILE_FREE: waits.while_free_s,
        LONG_WHILE_FREE: waits.long_while_free_s,
        IN_BUFFER: waits.in_buffer_s,
    }
    return result


def run_line(run: int, system: str, queue: str, found: Figures) -> str:
    bound = f", {found[RATIO]:.2f}× the bound" if RATIO in found else ""
    return (
        f"run {run + 1} {system:<8} {queue:<14}: makespan {found[MAKESPAN]:.2f} s{bound}; "
        f"waited while another worker was free {found[WHILE_FREE] * 1000:.0f} ms "
        f"(a long job {found[LONG_WHILE_FREE] * 1000:.0f} ms), "
        f"longest in a buffer {found[IN_BUFFER] * 1000:.0f} ms"
    )


def benchmark(base: Path, options: Options) -> Table:
    runs: dict[tuple[str, str], list[Figures]] = {(s, q): [] for s in SYSTEMS for q in QUEUES}
    load_before = load_line()
    with contextlib.ExitStack() as stack:
        redis_server = start_redis(stack, base)
        for run in range(options.runs):
            work = queues(options, run)
            order = SYSTEMS if run % 2 == 0 else SYSTEMS[::-1]
            for system in order:
                trivial_s = math.nan
                for queue in QUEUES:  # trivial only first: the others' bound needs it
                    folder = base / f"run-{run + 1}" / system.lower() / queue.replace(" ", "-")
                    folder.mkdir(parents=True)
                    if system == "botfleet":
                        outcome = asyncio.run(botfleet_queue(folder, work[queue], options.fleet))
                    else:
                        outcome = celery_queue(folder, redis_server, work[queue], options.fleet)
                    found = figures(outcome, work[queue], trivial_s, options.fleet.slots)
                    if queue == TRIVIAL:
                        trivial_s = found[MAKESPAN]
                    runs[system, queue].append(found)
                    print(run_line(run, system, queue, found), flush=True)
    return table(runs, options, load_before)


def ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:,.0f} ms"


def secs(seconds: float) -> str:
    """Seconds; a dash where there is no figure (the trivial-only queue has no bound)."""
    return "-" if math.isnan(seconds) else f"{seconds:.2f} s"


def table(runs: dict[tuple[str, str], list[Figures]], options: Options, load_before: str) -> Table:
    fleet = options.fleet
    result = Table(
        f"Mixed queue, botfleet vs Celery: medians of {options.runs} run(s); "
        f"{options.trivial_jobs:,} trivial jobs and {options.long_jobs} of "
        f"{options.long_seconds:g} s; {WORKERS} workers of {fleet.slots} slots",
        [
            "system, queue",
            "makespan",
            "lower bound",
            "÷ bound",
            "waited, other free",
            "a long job",
            "longest buffered",
        ],
    )
    for (system, queue), found in runs.items():
        mid = medians(found)
        ratio = mid.get(RATIO, math.nan)
        result.add_row(
            f"{system}, {queue}",
            secs(mid[MAKESPAN]),
            secs(mid.get(BOUND, math.nan)),
            "-" if math.isnan(ratio) else f"{ratio:.2f}×",
            ms(mid[WHILE_FREE]),
            ms(mid[LONG_WHILE_FREE]),
            ms(mid[IN_BUFFER]),
        )
    hold = fleet.bot_env.get("BOT_PREFETCH_HOLD_MS", str(DEFAULT_HOLD_MS))
    settings = " ".join(f"{k}={v}" for k, v in fleet.bot_env.items()) or "default settings"
    result.notes += [
        f"targets for botfleet: makespan ≤ {TARGET_RATIO:.2f}× the lower bound; no job waits "
        f"in a buffer while another bot has a free slot longer than BOT_PREFETCH_HOLD_MS "
        f"({hold} ms) plus one claim",
        "lower bound: max(long work ÷ all slots, longest job) + the same system's "
        "trivial-only makespan in the same run; each column is its own median (÷ bound: "
        "of the runs' ratios)",
        "waited, other free: the longest any job sat in one worker's buffer while another "
        "worker had a free slot (a long job: the same over the long jobs); longest "
        "buffered: the longest any job sat in a buffer",
        f"botfleet: SQLite coordinator + {WORKERS} bots, MAX_CONCURRENCY={fleet.slots}, "
        f"{settings}; Celery: Redis broker and result backend, {WORKERS} workers --pool "
        f"prefork --concurrency {fleet.slots}, default prefetch (multiplier 4)",
        f"each queue submitted to a fresh fleet, up and warmed up with {fleet.warmup_jobs} "
        "trivial jobs; one operation for all jobs",
        f"machine: {machine_line()}",
        code_line(),
        f"before: {load_before}; after: {load_line()}",
    ]
    return result


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--trivial-jobs", type=int, default=2000, help="default 2000")
    parser.add_argument("--long-jobs", type=int, default=8, help="default 8")
    parser.add_argument("--long-seconds", type=float, default=2.0, help="default 2")
    parser.add_argument("--slots", type=int, default=2, help="per worker (default 2)")
    parser.add_argument("--runs", type=int, default=3, help="medians over runs (default 3)")
    parser.add_argument("--quick", action="store_true", help="a single run (--runs 1)")
    parser.add_argument("--seed", type=int, default=1, help="places of the long jobs")
    parser.add_argument("--warmup-jobs", type=int, default=20, help="per fleet, default 20")
    parser.add_argument("--timeout", type=float, default=300, help="per phase, seconds")
    parser.add_argument(
        "--bot-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment of the bots, e.g. BOT_PREFETCH=0 (BOT_PREFETCH and "
        "BOT_PREFETCH_HOLD_MS are also taken from this environment)",
    )
    add_output_arguments(parser, "keep logs and databases here")
    args = parser.parse_args(argv)
    bot_env = {name: os.environ[name] for name in PASSED_THROUGH if os.environ.get(name)}
    given = dict(item.split("=", 1) for item in args.bot_env if "=" in item)
    if len(given) != len(args.bot_env):
        parser.error("--bot-env takes NAME=VALUE")
    for name in ("trivial_jobs", "slots", "runs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.long_jobs < 0 or args.warmup_jobs < 0 or args.long_seconds <= 0:
        parser.error("--long-jobs and --warmup-jobs must not be negative, --long-seconds positive")
    fleet = Fleet(args.slots, args.warmup_jobs, args.timeout, bot_env | given)
    return Options(
        args.trivial_jobs,
        args.long_jobs,
        args.long_seconds,
        1 if args.quick else args.runs,
        args.seed,
        fleet,
        args.format,
        args.workdir,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    return run_benchmark(options, benchmark, prefix="bf-mixed-")


if __name__ == "__main__":
    sys.exit(main())
