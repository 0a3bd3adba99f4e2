"""A fleet behind a faulty network: throughput as a share of the same fleet's on a clean one.

One coordinator (default settings) and bots (`MAX_CONCURRENCY` 8) that reach it only
through the fault-injecting proxy of the end-to-end tests. The same fleet runs `--jobs`
`sum` jobs twice: with the proxy passing everything, then with the proxy answering 10 %
of requests 503, dropping 5 % before the coordinator, delaying 5 % by 1.5 s, dropping
5 % of answers after the coordinator acted, and one cut of `--cut` seconds once about
a quarter of the jobs is done. Every result is checked.

Figures: each run's throughput, the faulty one's as a share of the clean one (the
target is at least 50 %), also with the cut's own seconds taken out of the faulty run
(no bot can deliver anything while the network is cut; what it takes to come back
after the cut stays in); the longest time a bot delivered no result while jobs waited
(from the jobs' `finished_at`, per bot), over the whole run and outside the cut; and
how long after the cut's end each bot's first result came. Printed only; nothing is
asserted.

The default of 100,000 jobs a run keeps the cut a small part of the faulty run, so the
headline share measures how the fleet recovers and what the steady fault mix costs,
not the cut's fixed seconds: a clean run of 20,000 jobs takes 3.5-4 s on a 2-core
machine, and a 5 s cut alone then holds the share under 45 % whatever the bots do;
at 100,000 jobs the clean run takes 9-12 s, and the benchmark 1-2 minutes in all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from benchmarks.fleet import (
    AdminClient,
    start_bot,
    start_coordinator,
    sum_job,
    sum_result_ok,
    wait_for_succeeded,
    wait_terminal,
)
from benchmarks.harness import (
    BenchmarkError,
    Table,
    add_output_arguments,
    code_line,
    fmt_rate,
    load_line,
    machine_line,
    ratio,
    run_benchmark,
)
from tests.e2e.faultproxy import FaultProxy, Faults, summary

BULK_SIZE = 1000
ONLINE_TIMEOUT_S = 60.0
POLL_S = 0.05
CLEAN = Faults()
FAULTS = Faults(
    overload=0.10,
    drop_before=0.05,
    delay=0.05,
    min_delay_s=1.5,
    max_delay_s=1.5,
    drop_after=0.05,
    retry_after_s=None,  # a load balancer's 503 names no time
)
SEED = 20261205


@dataclass(frozen=True, slots=True)
class Options:
    jobs: int
    bots: int
    max_concurrency: int
    cut_s: float
    timeout_s: float
    fmt: str
    workdir: Path | None


@dataclass(frozen=True, slots=True)
class RunFigures:
    seconds: float
    idle: Idle
    cut_s: float = 0.0  # how long the network was cut during the run

    def per_s(self, jobs: int, without_cut: bool = False) -> float:
        seconds = self.seconds - (self.cut_s if without_cut else 0.0)
        return jobs / seconds if seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Idle:
    longest_s: float  # the longest a bot delivered nothing while jobs waited
    longest_outside_cut_s: float  # the same, for stretches that do not touch the cut
    back_after_cut_s: float  # from the cut's end to the last bot's first result after it


@dataclass(frozen=True, slots=True)
class Window:
    began: float
    ended: float

    def touches(self, start: float, end: float) -> bool:
        return start <= self.ended and end >= self.began


async def wait_online(client: AdminClient, count: int) -> None:
    deadline = time.monotonic() + ONLINE_TIMEOUT_S
    while len([b for b in (await client.bots()).bots if b.state == "online"]) < count:
        if time.monotonic() > deadline:
            raise BenchmarkError(f"{count} bot(s) not online after {ONLINE_TIMEOUT_S:.0f} s")
        await asyncio.sleep(POLL_S)


def _moment(timestamp: str | None) -> float:
    if timestamp is None:
        raise BenchmarkError("a succeeded job without finished_at")
    return datetime.fromisoformat(timestamp).timestamp()


async def idle_figures(client: AdminClient, ids: set[str], run: Window, cut: Window | None) -> Idle:
    """Per bot, the stretches between two of its results (or the run's start or end):
    the longest of all bots, the longest that does not touch the cut, and the latest
    first result after the cut. Checks every result on the way."""
    finished: dict[str, list[float]] = {}
    cursor: str | None = None
    while True:  # bounded: the listing ends
        page = await client.jobs_page("succeeded", 1000, cursor)
        for job in page.jobs:
            if job.id not in ids:
                continue
            if not sum_result_ok(job):
                raise BenchmarkError(f"wrong result for {job.id}: {job.payload} -> {job.result}")
            finished.setdefault(job.bot_id or "?", []).append(_moment(job.finished_at))
        cursor = page.next_cursor
        if cursor is None:
            break
    if sum(len(times) for times in finished.values()) != len(ids):
        raise BenchmarkError("not every job of the run is listed as succeeded")
    longest = outside = back = 0.0
    for times in finished.values():
        marks = [run.began, *sorted(times), run.ended]
        for start, end in itertools.pairwise(marks):
            longest = max(longest, end - start)
            if cut is None or not cut.touches(start, end):
                outside = max(outside, end - start)
        if cut is not None:
            after = [moment for moment in times if moment >= cut.ended]
            back = max(back, (min(after) if after else run.ended) - cut.ended)
    return Idle(longest, outside, back)


async def one_run(
    client: AdminClient, proxy: FaultProxy, first: int, options: Options, cut: bool
) -> RunFigures:
    began = time.time()
    ids: list[str] = []
    for offset in range(first, first + options.jobs, BULK_SIZE):
        stop = min(offset + BULK_SIZE, first + options.jobs)
        ids += await client.submit_bulk([sum_job(i, 1) for i in range(offset, stop)])
    window: Window | None = None
    if cut:
        # Jobs are claimed in the order they were submitted, so the one a quarter of the
        # way in ending means about a quarter is done. Waited for server-side: the stats'
        # count of the last minute's results reads every one of them (about 10 ms with a
        # clean run's 100,000 in the window), too dear to poll while the fleet works.
        await wait_terminal(client, ids[options.jobs // 4], options.timeout_s)
        proxy.cut(options.cut_s)
        window = Window(time.time(), time.time() + options.cut_s)
    await wait_for_succeeded(
        client, ids, options.timeout_s, total=first + options.jobs, interval_s=POLL_S
    )
    ended = time.time()
    idle = await idle_figures(client, set(ids), Window(began, ended), window)
    return RunFigures(ended - began, idle, options.cut_s if cut else 0.0)


async def both_runs(base: Path, options: Options) -> tuple[RunFigures, RunFigures, str]:
    with contextlib.ExitStack() as stack:
        coordinator = start_coordinator(stack, base)
        proxy = stack.enter_context(FaultProxy(coordinator.url, CLEAN, seed=SEED))
        env = {"MAX_CONCURRENCY": str(options.max_concurrency)}
        # The bots' coordinator is the proxy (same tokens, the proxy's port).
        proxied = dataclasses.replace(coordinator, port=proxy.port)
        for n in range(options.bots):
            start_bot(stack, base, proxied, f"b{n}", env=env)
        async with AdminClient.connect(coordinator) as client:
            await wait_online(client, options.bots)
            clean = await one_run(client, proxy, 0, options, cut=False)
            proxy.faults = FAULTS
            faulty = await one_run(client, proxy, options.jobs, options, cut=True)
        return clean, faulty, str(summary(proxy))


def benchmark(base: Path, options: Options) -> Table:
    load_before = load_line()
    clean, faulty, counts = asyncio.run(both_runs(base, options))
    jobs = options.jobs
    table = Table(
        f"{options.bots} bots (MAX_CONCURRENCY {options.max_concurrency}), {jobs:,} sum jobs a run",
        ["figure", "clean network", "faulty network", "faulty ÷ clean", "target"],
    )
    table.add_row(
        "throughput",
        fmt_rate(clean.per_s(jobs)),
        fmt_rate(faulty.per_s(jobs)),
        f"{100 * ratio(faulty.per_s(jobs), clean.per_s(jobs)):.0f} %",
        "≥ 50 %",
    )
    table.add_row(
        f"throughput, the cut's {options.cut_s:g} s taken out",
        fmt_rate(clean.per_s(jobs)),
        fmt_rate(faulty.per_s(jobs, without_cut=True)),
        f"{100 * ratio(faulty.per_s(jobs, without_cut=True), clean.per_s(jobs)):.0f} %",
        "",
    )
    table.add_row(
        "run",
        f"{clean.seconds:.1f} s",
        f"{faulty.seconds:.1f} s",
        f"{ratio(faulty.seconds, clean.seconds):.1f} x",
        "< 3 x",
    )
    table.add_row(
        "longest a bot delivered nothing while jobs waited",
        f"{clean.idle.longest_s:.1f} s",
        f"{faulty.idle.longest_s:.1f} s",
        "",
        "",
    )
    table.add_row(
        "  the same, outside the cut",
        f"{clean.idle.longest_outside_cut_s:.1f} s",
        f"{faulty.idle.longest_outside_cut_s:.1f} s",
        "",
        "",
    )
    back = f"{faulty.idle.back_after_cut_s:.1f} s"
    table.add_row("first result after the cut's end (slowest bot)", "", back, "", "")
    table.notes.append(f"faults: {FAULTS}; one {options.cut_s:g} s cut; proxy: {counts}")
    table.notes.append(f"machine: {machine_line()}")
    table.notes.append(code_line())
    table.notes.append(f"before: {load_before}; after: {load_line()}")
    return table


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs a run (default 100,000)")
    parser.add_argument("--bots", type=int, default=2)
    parser.add_argument("--max-concurrency", type=int, default=8)
    parser.add_argument("--cut", type=float, default=5.0, help="seconds (default 5)")
    parser.add_argument("--timeout", type=float, default=600, help="per run, seconds")
    add_output_arguments(parser, "keep logs and databases here")
    args = parser.parse_args(argv)
    if args.jobs < 4 or args.bots < 1 or args.max_concurrency < 1 or args.cut < 0:
        parser.error("want --jobs ≥ 4, --bots ≥ 1, --max-concurrency ≥ 1, --cut ≥ 0")
    return Options(
        jobs=args.jobs,
        bots=args.bots,
        max_concurrency=args.max_concurrency,
        cut_s=args.cut,
        timeout_s=args.timeout,
        fmt=args.format,
        workdir=args.workdir,
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_benchmark(parse_args(argv), benchmark, prefix="bf-faults-")


if __name__ == "__main__":
    sys.exit(main())
