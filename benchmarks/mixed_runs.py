"""One queue of `benchmarks/mixed.py` through botfleet and through Celery: a fleet of two
workers started and warmed up, the jobs submitted in order, every job's stays in a buffer
and its run read back as `JobTrace`s.

botfleet: a SQLite coordinator and two `python -m bot` with `MAX_CONCURRENCY` = slots and
the `nap` plugin. A job entered a bot's buffer when the coordinator recorded the claim of
an attempt, and left it when its handler started (`nap` answers when), or when the
attempt ended for one given back unstarted. The attempts are read from the coordinator's
SQLite file (the `attempts` table, in microseconds): `GET /v1/jobs/{id}/attempts` rounds
to the millisecond and leaves out the attempts given back unstarted, whose time in a
buffer is what the benchmark is after. The results come through the API. Celery: two
workers of its default pool (prefork) with `--concurrency` = slots and the default
prefetch; a task entered a worker's buffer when the worker's `task_received` signal fired.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

from benchmarks import celery_tasks
from benchmarks.fleet import (
    AdminClient,
    FleetCoordinator,
    start_bot,
    start_coordinator,
    wait_for_succeeded,
)
from benchmarks.harness import (
    BenchmarkError,
    RedisServer,
    python_module,
    require_alive,
    start_process,
    wait_until,
    watch_count,
)
from benchmarks.mixed_timeline import JobTrace, Stay
from botfleet.protocol import messages as m

WORKERS = 2
BULK_SIZE = 1000  # the most one POST /v1/jobs/bulk takes
PAGE = 1000
MICROSECOND = 1e-6
STATS_POLL_S = 0.05  # polling for the end: often enough, and little load on the coordinator
PING_TIMEOUT_S = 0.5


@dataclass(frozen=True, slots=True)
class Fleet:
    """What every run shares: slots per worker, warm-up jobs, a deadline per phase, and
    the bots' environment beyond the defaults (BOT_PREFETCH, BOT_PREFETCH_HOLD_MS, …)."""

    slots: int
    warmup_jobs: int
    timeout_s: float
    bot_env: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Outcome:
    submitted_at: float
    traces: list[JobTrace]


@dataclass(frozen=True, slots=True)
class Attempt:
    number: int
    bot_id: str
    claimed_at: float
    ended_at: float | None


# ---------------------------------------------------------------- botfleet


def nap_job(seconds: float) -> m.SubmitJob:
    return m.SubmitJob(op="nap", payload={"seconds": seconds})


async def wait_for_bots(client: AdminClient, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while sum(bot.state == "online" for bot in (await client.bots()).bots) < count:
        if time.monotonic() > deadline:
            raise BenchmarkError(f"{count} bots not online after {timeout_s:.0f} s")
        await asyncio.sleep(0.05)


async def submit(client: AdminClient, jobs: Sequence[m.SubmitJob]) -> list[str]:
    ids: list[str] = []
    for offset in range(0, len(jobs), BULK_SIZE):
        ids += await client.submit_bulk(jobs[offset : offset + BULK_SIZE])
    return ids


def botfleet_trace(job: m.JobView, attempts: Sequence[Attempt]) -> JobTrace:
    if job.result is None or job.bot_id is None:
        raise BenchmarkError(f"job {job.id} succeeded without a result or a bot: {job}")
    started, ended = float(job.result["started"]), float(job.result["ended"])
    stays = []
    for attempt in attempts:
        if attempt.number == job.attempt:
            until = started
        elif attempt.ended_at is not None:
            until = attempt.ended_at
        else:
            continue
        stays.append(Stay(attempt.bot_id, attempt.claimed_at, max(attempt.claimed_at, until)))
    return JobTrace(job.payload["seconds"] > 0, job.bot_id, started, ended, tuple(stays))


def read_attempts(coordinator: FleetCoordinator) -> dict[str, list[Attempt]]:
    """Every attempt of every job, from the coordinator's database (read-only)."""
    database = coordinator.state_dir / "botfleet.db"
    attempts: dict[str, list[Attempt]] = {}
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT job_id, attempt, bot_id, claimed_at, ended_at FROM attempts ORDER BY attempt"
        )
        for job_id, number, bot_id, claimed_us, ended_us in rows:
            ended_at = None if ended_us is None else ended_us * MICROSECOND
            attempt = Attempt(number, bot_id, claimed_us * MICROSECOND, ended_at)
            attempts.setdefault(job_id, []).append(attempt)
    return attempts


async def botfleet_traces(
    client: AdminClient, coordinator: FleetCoordinator, ids: Sequence[str]
) -> list[JobTrace]:
    wanted = set(ids)
    jobs: list[m.JobView] = []
    cursor: str | None = None
    for _ in range(len(ids) // PAGE + 3):  # bounded: the warm-up jobs are listed too
        listing = await client.jobs_page("succeeded", PAGE, cursor)
        jobs += [job for job in listing.jobs if job.id in wanted]
        cursor = listing.next_cursor
        if cursor is None:
            break
    if len(jobs) != len(wanted):
        raise BenchmarkError(f"listed {len(jobs)} of {len(wanted)} succeeded jobs")
    attempts = read_attempts(coordinator)
    return [botfleet_trace(job, attempts.get(job.id, [])) for job in jobs]


async def botfleet_queue(workdir: Path, seconds: Sequence[float], fleet: Fleet) -> Outcome:
    """A fresh coordinator and two bots, warmed up; then the queue, in order."""
    with contextlib.ExitStack() as stack:
        coordinator = start_coordinator(stack, workdir)
        env = {
            "BOT_PLUGINS": "benchmarks.mixed_ops",
            "MAX_CONCURRENCY": str(fleet.slots),
            **fleet.bot_env,
        }
        bots = [
            start_bot(stack, workdir, coordinator, f"mixed-{n}", env=env) for n in range(WORKERS)
        ]
        async with AdminClient.connect(coordinator) as client:
            await wait_for_bots(client, WORKERS, fleet.timeout_s)
            if fleet.warmup_jobs:
                warmup = await submit(client, [nap_job(0)] * fleet.warmup_jobs)
                await wait_for_succeeded(client, warmup, fleet.timeout_s)
            submitted_at = time.time()
            ids = await submit(client, [nap_job(s) for s in seconds])
            await wait_for_succeeded(
                client,
                ids,
                fleet.timeout_s,
                total=fleet.warmup_jobs + len(ids),
                interval_s=STATS_POLL_S,
            )
            for bot in bots:
                require_alive(bot)
            traces = await botfleet_traces(client, coordinator, ids)
    return Outcome(submitted_at, traces)


# ---------------------------------------------------------------- Celery


def read_receipts(folder: Path) -> dict[str, float]:
    """Task id -> when a worker took it from the broker, from every worker's file."""
    received: dict[str, float] = {}
    for path in folder.glob("received-*.txt"):
        for line in path.read_text().splitlines():
            task_id, moment = line.split()
            received[task_id] = float(moment)
    return received


def celery_traces(
    results_db: redis.Redis, task_ids: Sequence[str], seconds: Sequence[float], receipts: Path
) -> list[JobTrace]:
    received = read_receipts(receipts)
    traces = []
    for first in range(0, len(task_ids), BULK_SIZE):
        chunk = task_ids[first : first + BULK_SIZE]
        stored = results_db.mget([f"celery-task-meta-{task_id}" for task_id in chunk])
        for offset, (task_id, raw) in enumerate(zip(chunk, stored, strict=True)):
            meta = json.loads(raw) if raw is not None else None
            if not meta or meta.get("status") != "SUCCESS" or task_id not in received:
                raise BenchmarkError(f"Celery task {task_id}: no success or no receipt: {meta}")
            result = meta["result"]
            started, ended, worker = (
                float(result["started"]),
                float(result["ended"]),
                result["worker"],
            )
            since = received[task_id]
            stay = Stay(worker, since, max(since, started))
            traces.append(JobTrace(seconds[first + offset] > 0, worker, started, ended, (stay,)))
    return traces


def celery_queue(
    workdir: Path, redis_server: RedisServer, seconds: Sequence[float], fleet: Fleet
) -> Outcome:
    """Two fresh workers on an empty Redis, warmed up; then the queue, in order."""
    broker_url, backend_url = redis_server.url(0), redis_server.url(1)
    receipts = workdir / "receipts"
    receipts.mkdir()
    with (
        contextlib.ExitStack() as stack,
        redis.Redis.from_url(broker_url) as broker_db,
        redis.Redis.from_url(backend_url) as results_db,
    ):
        broker_db.flushall()
        app = celery_tasks.configure(broker_url, backend_url)
        stack.callback(app.close)
        workers = [
            start_process(
                stack,
                f"celery-worker-{n}",
                python_module(
                    "celery",
                    *celery_tasks.worker_args(broker_url, backend_url, n, concurrency=fleet.slots),
                ),
                workdir,
                env={celery_tasks.RECEIPTS_DIR_ENV: str(receipts)},
            )
            for n in range(WORKERS)
        ]
        wait_until(
            lambda: len(app.control.ping(timeout=PING_TIMEOUT_S)) >= WORKERS,
            fleet.timeout_s,
            "both Celery workers answering a ping",
        )
        warmup = [celery_tasks.nap_task.apply_async((0,)) for _ in range(fleet.warmup_jobs)]
        for result in warmup:
            result.get(timeout=fleet.timeout_s)
        submitted_at = time.time()
        task_ids = [celery_tasks.nap_task.apply_async((s,)).id for s in seconds]
        watch_count(
            lambda: int(results_db.dbsize()),
            fleet.warmup_jobs + len(task_ids),
            fleet.timeout_s,
            f"{len(task_ids)} Celery results",
            interval_s=STATS_POLL_S,
        )
        for worker in workers:
            require_alive(worker)
        traces = celery_traces(results_db, task_ids, seconds, receipts)
    return Outcome(submitted_at, traces)
