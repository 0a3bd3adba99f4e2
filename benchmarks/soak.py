"""Soak: many `sum` jobs at a steady rate through a coordinator that deletes what it
has finished (`--retain-finished`), to see whether the disk and memory level off.

One coordinator (SQLite in the work folder, or `--db postgresql://…`, which should be
a fresh database) and `--bots` bot processes; `--jobs` jobs are submitted in bulk
requests paced to `--rate` jobs a second. At every tenth of the submissions (and once
the queue has drained) the database's size (SQLite: the file with its WAL;
PostgreSQL: the tables and indexes of the `public` schema), the coordinator's RSS and
the largest bot RSS are sampled and printed as a curve. A series "levelled off" when
its last sample is within `--level-tolerance` of the one taken half-way through.
Nothing is asserted: this prints the curve.

On PostgreSQL, deleted rows are reclaimed only by a vacuum; the table notes the
server's `autovacuum` setting and the dead rows at the end. `--vacuum-every SECONDS`
runs a plain `VACUUM` of the database that often, standing in for autovacuum on a
server that has it off (the server's configuration is left alone).

Run from the repository root: `python -m benchmarks.soak --jobs 200000`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.fleet import AdminClient, FleetCoordinator, start_bot, start_coordinator, sum_job
from benchmarks.harness import (
    BenchmarkError,
    ChildProcess,
    Table,
    add_output_arguments,
    fmt_mib,
    machine_line,
    rss_bytes,
    run_benchmark,
)

BULK = 1000  # the most one POST /v1/jobs/bulk takes
SAMPLES = 10
BOT_ENV = {"MAX_CONCURRENCY": "32", "CLAIM_BATCH_SIZE": "32"}


@dataclass(frozen=True, slots=True)
class Options:
    jobs: int
    rate: float
    bots: int
    retain: str
    db: str | None
    level_tolerance: float
    timeout_s: float
    vacuum_every_s: float | None
    fmt: str
    workdir: Path | None


@dataclass(frozen=True, slots=True)
class Sample:
    label: str
    submitted: int
    elapsed_s: float
    db_bytes: int
    coordinator_rss: int
    bot_rss: int
    live_jobs: int  # rows in the jobs table: queued, running and not yet deleted


async def database_bytes(coordinator: FleetCoordinator, db: str | None) -> int:
    if db is None:
        path = coordinator.state_dir / "botfleet.db"
        files = (path, path.with_name(path.name + "-wal"))
        return sum(file.stat().st_size for file in files if file.exists())
    import asyncpg

    connection = await asyncpg.connect(db)
    try:
        size = await connection.fetchval(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind = 'r'"
        )
    finally:
        await connection.close()
    return int(size)


async def postgres_facts(db: str) -> str:
    """The server's autovacuum setting and the dead rows of the public tables now."""
    import asyncpg

    connection = await asyncpg.connect(db)
    try:
        autovacuum = await connection.fetchval("SHOW autovacuum")
        dead = await connection.fetchval(
            "SELECT coalesce(sum(n_dead_tup), 0) FROM pg_stat_user_tables"
            " WHERE schemaname = 'public'"
        )
    finally:
        await connection.close()
    return f"PostgreSQL autovacuum = {autovacuum}; dead rows at the end: {int(dead):,}"


async def vacuum_loop(db: str, every_s: float, stop: asyncio.Event) -> int:
    """A plain VACUUM of the database every `every_s` seconds until `stop`; how many ran."""
    import asyncpg

    runs = 0
    connection = await asyncpg.connect(db)
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)
            if stop.is_set():
                break
            await connection.execute("VACUUM")
            runs += 1
    finally:
        await connection.close()
    return runs


async def take_sample(
    label: str,
    submitted: int,
    started: float,
    client: AdminClient,
    coordinator: FleetCoordinator,
    bots: Sequence[ChildProcess],
    db: str | None,
) -> Sample:
    stats = await client.stats()
    return Sample(
        label=label,
        submitted=submitted,
        elapsed_s=time.monotonic() - started,
        db_bytes=await database_bytes(coordinator, db),
        coordinator_rss=rss_bytes(coordinator.process.pid),
        bot_rss=max(rss_bytes(bot.pid) for bot in bots),
        live_jobs=sum(stats.jobs.values()),
    )


async def drained(client: AdminClient, deadline: float) -> None:
    """Until no job is queued or running (polled: a soak has no last job to wait on)."""
    while True:
        stats = await client.stats()
        if not stats.jobs.get("queued", 0) and not stats.jobs.get("running", 0):
            return
        if time.monotonic() > deadline:
            raise BenchmarkError(f"the queue did not drain in time: {stats.jobs}")
        await asyncio.sleep(0.5)


async def soak(
    coordinator: FleetCoordinator, bots: Sequence[ChildProcess], options: Options
) -> tuple[list[Sample], list[str]]:
    """The samples, and notes on the database (PostgreSQL: autovacuum, dead rows, vacuums)."""
    stop_vacuum = asyncio.Event()
    vacuums: asyncio.Task[int] | None = None
    if options.db is not None and options.vacuum_every_s is not None:
        vacuums = asyncio.create_task(vacuum_loop(options.db, options.vacuum_every_s, stop_vacuum))
    try:
        samples = await submit_and_sample(coordinator, bots, options)
    finally:
        stop_vacuum.set()
        runs = 0 if vacuums is None else await vacuums
    notes: list[str] = []
    if options.db is not None:
        notes.append(await postgres_facts(options.db))
        if vacuums is not None:
            notes.append(f"a plain VACUUM every {options.vacuum_every_s:g} s: {runs} ran")
    return samples, notes


async def submit_and_sample(
    coordinator: FleetCoordinator, bots: Sequence[ChildProcess], options: Options
) -> list[Sample]:
    samples: list[Sample] = []
    every = max(1, options.jobs // SAMPLES)
    async with AdminClient.connect(coordinator) as client:
        started = time.monotonic()
        deadline = started + options.timeout_s

        async def sample(label: str, submitted: int) -> None:
            samples.append(
                await take_sample(label, submitted, started, client, coordinator, bots, options.db)
            )

        await sample("start", 0)
        submitted = 0
        next_sample = every
        while submitted < options.jobs:
            count = min(BULK, every, options.jobs - submitted)  # samples land on tenths
            await client.submit_bulk([sum_job(submitted + i, 1) for i in range(count)])
            submitted += count
            # Paced: the next bulk leaves when the rate says it is due.
            due = started + submitted / options.rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if submitted >= next_sample:
                await sample(f"{100 * submitted // options.jobs} %", submitted)
                next_sample += every
            if time.monotonic() > deadline:
                raise BenchmarkError(f"only {submitted} jobs submitted in {options.timeout_s} s")
        await drained(client, deadline)
        await sample("drained", submitted)
    return samples


def levelled(values: Sequence[int], tolerance: float) -> str:
    """Whether the last value stayed within `tolerance` of the one half-way through."""
    middle, last = values[len(values) // 2], values[-1]
    if middle <= 0:
        return "n/a"
    growth = last / middle - 1
    verdict = "levelled off" if growth <= tolerance else "still growing"
    return f"{verdict} ({growth:+.1%} since half-way)"


def benchmark(base: Path, options: Options) -> Table:
    retention = ["--retain-finished", options.retain, "--retain-bots", options.retain]
    with contextlib.ExitStack() as stack:
        coordinator = start_coordinator(stack, base, db_url=options.db, extra_args=retention)
        bots = [
            start_bot(stack, base, coordinator, f"soak-{index}", BOT_ENV)
            for index in range(options.bots)
        ]
        samples, db_notes = asyncio.run(soak(coordinator, bots, options))
    backend = "PostgreSQL" if options.db else "SQLite"
    table = Table(
        f"Soak: {options.jobs:,} sum jobs at {options.rate:,.0f}/s on {backend}, "
        f"--retain-finished {options.retain}",
        ["sample", "jobs submitted", "elapsed", "jobs in the table", "database", "coordinator RSS",
         "bot RSS (largest)"],
    )  # fmt: skip
    for sample in samples:
        table.add_row(
            sample.label,
            f"{sample.submitted:,}",
            f"{sample.elapsed_s:,.0f} s",
            f"{sample.live_jobs:,}",
            fmt_mib(sample.db_bytes),
            fmt_mib(sample.coordinator_rss),
            fmt_mib(sample.bot_rss),
        )
    curve = samples[1:]  # the empty start is not part of the steady state
    tolerance = options.level_tolerance
    table.notes += [
        f"database: {levelled([s.db_bytes for s in curve], tolerance)}",
        f"coordinator RSS: {levelled([s.coordinator_rss for s in curve], tolerance)}",
        f"bot RSS: {levelled([s.bot_rss for s in curve], tolerance)}",
        *db_notes,
        machine_line(),
    ]
    return table


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=1_000_000, help="jobs in all (1000000)")
    parser.add_argument("--rate", type=float, default=1000.0, help="jobs submitted a second")
    parser.add_argument("--bots", type=int, default=2, help="bot processes (2)")
    parser.add_argument("--retain", default="1m", help="--retain-finished and --retain-bots")
    parser.add_argument("--db", help="postgresql://… (a fresh database); default: SQLite")
    parser.add_argument(
        "--level-tolerance", type=float, default=0.05, help="growth still 'level' (0.05)"
    )
    parser.add_argument("--timeout", type=float, default=86_400, help="seconds in all")
    parser.add_argument(
        "--vacuum-every", type=float, help="PostgreSQL: a plain VACUUM this often (seconds)"
    )
    add_output_arguments(parser, "keep logs and the database here")
    args = parser.parse_args(argv)
    for name in ("jobs", "bots"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if not args.rate > 0:
        parser.error("--rate must be more than 0")
    if args.vacuum_every is not None and (args.db is None or not args.vacuum_every > 0):
        parser.error("--vacuum-every wants --db and a number of seconds above 0")
    return Options(
        jobs=args.jobs,
        rate=args.rate,
        bots=args.bots,
        retain=args.retain,
        db=args.db,
        level_tolerance=args.level_tolerance,
        timeout_s=args.timeout,
        vacuum_every_s=args.vacuum_every,
        fmt=args.format,
        workdir=args.workdir,
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_benchmark(parse_args(argv), benchmark, prefix="bf-soak-")


if __name__ == "__main__":
    sys.exit(main())
