"""Schedule lateness: how long after its due time each job of 1-second schedules is made,
with several firers (coordinators' schedule tasks) sharing one database.

Each firer has its own store, as a coordinator process has; they run in this process on
the real clock. At the end, every schedule's jobs are read back: lateness is a job's
creation minus its due time (its run_at), and every due time must have one job.

    python -m benchmarks.schedule_lateness --duration 600 --schedules 10
    python -m benchmarks.schedule_lateness --db postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
from collections import Counter
from pathlib import Path

from benchmarks.harness import fmt_ms, percentile
from botfleet.clock import SystemClock
from botfleet.tracing import Tracer
from coordinator.routes.schedules import submitter, template_jobs
from coordinator.scheduling import ScheduleFirer
from coordinator.store.base import JobQuery, JobRecord, Store
from coordinator.store.postgres import PostgresStore
from coordinator.store.schedules import ScheduleSpec, Timing
from coordinator.store.sqlite import SQLiteStore


def no_retry_delay(attempt: int) -> float:
    return 0.0


def stores(db: str | None, count: int, workdir: Path) -> tuple[list[Store], str | None]:
    """`count` stores on one database; the PostgreSQL schema to drop afterwards."""
    clock = SystemClock()
    if db is None:
        path = str(workdir / "lateness.db")
        return [SQLiteStore(path, clock, no_retry_delay) for _ in range(count)], None
    schema = "botfleet_lateness_" + secrets.token_hex(4)
    made: list[Store] = [
        PostgresStore(db, clock, no_retry_delay, schema=schema) for _ in range(count)
    ]
    return made, schema


async def jobs_of(store: Store, name: str) -> list[JobRecord]:
    found: list[JobRecord] = []
    cursor: str | None = None
    while True:
        query = JobQuery(limit=1000, cursor=cursor, submitted_by=submitter(name))
        page, cursor = await store.list_jobs(query)
        found.extend(page)
        if cursor is None:
            return found


async def measure(args: argparse.Namespace, workdir: Path) -> None:
    opened, schema = stores(args.db, args.firers, workdir)
    for store in opened:
        await store.open()
    names = [f"every-second-{i}" for i in range(args.schedules)]
    try:
        for name in names:
            await opened[0].put_schedule(ScheduleSpec(name, Timing(every_s=1), {"op": "tick"}))
        stop = asyncio.Event()
        make_job = template_jobs(Tracer("benchmark", enabled=False))
        firers = [ScheduleFirer(store, SystemClock(), make_job) for store in opened]
        tasks = [asyncio.create_task(firer.run(stop)) for firer in firers]
        await asyncio.sleep(args.duration)
        stop.set()
        await asyncio.gather(*tasks)
        lateness: list[float] = []
        doubled = 0
        for name in names:
            jobs = await jobs_of(opened[0], name)
            doubled += sum(n - 1 for n in Counter(job.run_at for job in jobs).values())
            lateness.extend((job.created_at - job.run_at).total_seconds() for job in jobs)
    finally:
        for store in opened:
            await store.close()
        if schema is not None:
            await drop_schema(args.db, schema)
    backend = "SQLite" if args.db is None else "PostgreSQL"
    print(
        f"{backend}, {args.firers} firers, {args.schedules} one-second schedules, "
        f"{args.duration:.0f} s: {len(lateness)} jobs, due times with two jobs: {doubled}; "
        f"lateness p50 {fmt_ms(percentile(lateness, 50))}, "
        f"p99 {fmt_ms(percentile(lateness, 99))}, max {fmt_ms(max(lateness, default=0.0))}"
    )


async def drop_schema(dsn: str, schema: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--db", help="a PostgreSQL DSN (default: a new SQLite file)")
    parser.add_argument("--firers", type=int, default=2, help="default 2")
    parser.add_argument("--schedules", type=int, default=10, help="default 10")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds (default 60)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        asyncio.run(measure(args, Path(workdir)))


if __name__ == "__main__":
    main()
