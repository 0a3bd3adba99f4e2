"""botfleet against Celery, on one machine, in one run.

botfleet: a SQLite coordinator and two bots, default settings. Celery: Redis as broker
and result backend on a private redis-server, two `--pool solo` workers. Each run
measures enqueue throughput, processing throughput and submit-to-result latency, the
same way for both systems (docs/performance.md says exactly how); the table quotes
medians over `--runs`, and the systems alternate which goes first. Each run also times
enqueueing through each system's own producer API at its best: the botfleet client's
`submit_many` against Celery's `group`, into an operation (a queue) no worker takes.
botfleet runs a second time over HTTPS (a CA and certificate made at run time), beside
the plain run, and a second table shows what TLS costs at the defaults.
Run from the repository root: `python -m benchmarks.vs_celery`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import redis
from celery import group  # type: ignore[import-untyped, unused-ignore]

from benchmarks import celery_tasks
from benchmarks.fleet import (
    AdminClient,
    FleetTls,
    start_bot,
    start_coordinator,
    sum_job,
    sum_result_ok,
    verify_all_succeeded,
    wait_for_succeeded,
    wait_terminal,
)
from benchmarks.harness import (
    BenchmarkError,
    CpuMeter,
    RedisServer,
    add_fleet_run_arguments,
    cpu_seconds,
    load_line,
    medians,
    percentile,
    python_module,
    require_alive,
    run_benchmark,
    start_process,
    start_redis,
    watch_count,
)
from benchmarks.vs_celery_tables import (
    CLIENT_ENQUEUE,
    ENQUEUE,
    GROUP_ENQUEUE,
    P50,
    P99,
    PROCESS,
    SERVER_CORES,
    STARTUP,
    STEADY,
    WORKER_CORES,
    Options,
    Tables,
    comparison_table,
    run_line,
    tls_cost_table,
)
from botfleet.client import AsyncClient

BULK_SIZE = 1000  # the most one POST /v1/jobs/bulk takes
WAIT_MS = 30_000
WORKERS = 2

# Jobs that only measure enqueueing go where no bot or worker takes them, so they
# neither add to the processing figures nor compete with it.
IDLE_OP = "enqueue-only"


def processing_figures(
    jobs: int, started: float, first: float, finished: float
) -> dict[str, float]:
    """Throughput from starting the workers; start-up (to the first result); and the rate
    after the first result (jobs - 1 over the time between first and last)."""
    steady_s = finished - first
    return {
        PROCESS: jobs / (finished - started),
        STARTUP: first - started,
        STEADY: (jobs - 1) / steady_s if jobs > 1 and steady_s > 0 else math.nan,
    }


def cpu_figures(server: CpuMeter, worker_pids: list[int]) -> dict[str, float]:
    """CPU while processing, in cores: the server side (coordinator or redis) and the two
    workers together (their whole life so far, start-up included: they started with the
    clock)."""
    usage = server.finish()
    return {
        SERVER_CORES: usage.core_fraction,
        WORKER_CORES: cpu_seconds(worker_pids) / usage.wall_s,
    }


def summarise_latency(samples: Sequence[float]) -> dict[str, float]:
    return {P50: percentile(samples, 50), P99: percentile(samples, 99)}


# ---------------------------------------------------------------- botfleet


async def botfleet_run(
    workdir: Path, options: Options, tls: FleetTls | None = None
) -> dict[str, float]:
    with contextlib.ExitStack() as stack:
        batch = (
            () if options.claim_batch is None else ("--claim-batch-size", str(options.claim_batch))
        )
        coordinator = start_coordinator(stack, workdir, extra_args=batch, tls=tls)
        async with AdminClient.connect(coordinator) as client:
            jobs = [sum_job(i, i + 1) for i in range(options.jobs)]
            ids: list[str] = []
            started = time.perf_counter()
            for offset in range(0, len(jobs), BULK_SIZE):
                ids += await client.submit_bulk(jobs[offset : offset + BULK_SIZE])
            enqueue_s = time.perf_counter() - started

            server_cpu = CpuMeter([coordinator.process.pid])
            started = time.perf_counter()
            bots = [
                start_bot(stack, workdir, coordinator, f"bench-{n}", env=options.bot_env)
                for n in range(WORKERS)
            ]
            first = await wait_for_succeeded(client, ids, options.timeout_s)
            processing = processing_figures(options.jobs, started, first, time.perf_counter())
            processing |= cpu_figures(server_cpu, [bot.pid for bot in bots])
            for bot in bots:
                require_alive(bot)
            await verify_all_succeeded(client, options.jobs)

            samples: list[float] = []
            for n in range(options.warmup_jobs + options.latency_jobs):
                started = time.perf_counter()
                job_id = await client.submit(sum_job(n, 7))
                job = await wait_terminal(client, job_id, WAIT_MS / 1000)
                elapsed = time.perf_counter() - started
                if not sum_result_ok(job):
                    raise BenchmarkError(f"latency job {job_id} ended {job.state}: {job}")
                if n >= options.warmup_jobs:
                    samples.append(elapsed)
            client_rate = await client_enqueue_rate(
                coordinator.url, coordinator.admin_token, options.jobs, coordinator.ca_file
            )
    return {
        ENQUEUE: options.jobs / enqueue_s,
        CLIENT_ENQUEUE: client_rate,
        **processing,
        **summarise_latency(samples),
    }


async def client_enqueue_rate(
    server: str, token: str, jobs: int, ca_file: Path | None = None
) -> float:
    """Jobs per second through `AsyncClient.submit_many` (bulk requests, a few at once),
    building the jobs included, as a producer would."""
    ca = None if ca_file is None else str(ca_file)
    async with AsyncClient(server, token=token, ca_file=ca, environ={}) as client:
        started = time.perf_counter()
        handles = await client.submit_many([(IDLE_OP, {"a": i, "b": i + 1}) for i in range(jobs)])
        elapsed = time.perf_counter() - started
    if len(handles) != jobs:
        raise BenchmarkError(f"submit_many answered {len(handles)} ids for {jobs} jobs")
    return jobs / elapsed


# ---------------------------------------------------------------- Celery


def check_celery_results(results_db: redis.Redis, expected: dict[str, int]) -> None:
    """Every stored result is SUCCESS with the right sum; read back in chunks with MGET."""
    ids = list(expected)
    for first in range(0, len(ids), BULK_SIZE):
        chunk = ids[first : first + BULK_SIZE]
        stored = results_db.mget([f"celery-task-meta-{task_id}" for task_id in chunk])
        for task_id, raw in zip(chunk, stored, strict=True):
            meta = json.loads(raw) if raw is not None else None
            if not meta or meta.get("status") != "SUCCESS":
                raise BenchmarkError(f"Celery task {task_id} has no successful result: {meta}")
            if meta.get("result") != {"result": expected[task_id]}:
                raise BenchmarkError(f"Celery task {task_id}: wrong result {meta.get('result')}")


def celery_run(workdir: Path, redis_server: RedisServer, options: Options) -> dict[str, float]:
    broker_url, backend_url = redis_server.url(0), redis_server.url(1)
    with (
        contextlib.ExitStack() as stack,
        redis.Redis.from_url(broker_url) as broker_db,
        redis.Redis.from_url(backend_url) as results_db,
    ):
        broker_db.flushall()
        app = celery_tasks.configure(broker_url, backend_url)
        stack.callback(app.close)

        expected: dict[str, int] = {}
        started = time.perf_counter()
        for i in range(options.jobs):
            expected[celery_tasks.sum_task.apply_async((i, i + 1)).id] = 2 * i + 1
        enqueue_s = time.perf_counter() - started

        server_cpu = CpuMeter([redis_server.pid])
        started = time.perf_counter()
        workers = [
            start_process(
                stack,
                f"celery-worker-{n}",
                python_module("celery", *celery_tasks.worker_args(broker_url, backend_url, n)),
                workdir,
            )
            for n in range(WORKERS)
        ]
        first = watch_count(
            lambda: int(results_db.dbsize()),
            options.jobs,
            options.timeout_s,
            f"{options.jobs} Celery results",
        )
        processing = processing_figures(options.jobs, started, first, time.perf_counter())
        processing |= cpu_figures(server_cpu, [worker.pid for worker in workers])
        for worker in workers:
            require_alive(worker)
        check_celery_results(results_db, expected)

        samples: list[float] = []
        for n in range(options.warmup_jobs + options.latency_jobs):
            started = time.perf_counter()
            value = celery_tasks.sum_task.apply_async((n, 7)).get(timeout=WAIT_MS / 1000)
            elapsed = time.perf_counter() - started
            if value != {"result": n + 7}:
                raise BenchmarkError(f"Celery latency task {n}: wrong result {value}")
            if n >= options.warmup_jobs:
                samples.append(elapsed)
        group_rate = celery_group_rate(options.jobs)
    return {
        ENQUEUE: options.jobs / enqueue_s,
        GROUP_ENQUEUE: group_rate,
        **processing,
        **summarise_latency(samples),
    }


def celery_group_rate(jobs: int) -> float:
    """Tasks per second through one `group(...).apply_async()`, signatures included."""
    started = time.perf_counter()
    tasks = (celery_tasks.sum_task.s(i, i + 1).set(queue=IDLE_OP) for i in range(jobs))
    result = group(tasks).apply_async()
    elapsed = time.perf_counter() - started
    if len(result.results) != jobs:
        raise BenchmarkError(f"the Celery group holds {len(result.results)} of {jobs} tasks")
    return jobs / elapsed


def benchmark(base: Path, options: Options) -> Tables:
    runs: dict[str, list[dict[str, float]]] = {"botfleet": [], "https": [], "celery": []}
    load_before = load_line()
    tls = FleetTls.make(base / "tls")
    with contextlib.ExitStack() as stack:
        redis_server = start_redis(stack, base)
        for run in range(options.runs):
            run_dir = base / f"run-{run + 1}"
            (run_dir / "https").mkdir(parents=True)
            # HTTP and HTTPS side by side, each first in turn: their ratio is the point.
            order = (
                ("botfleet", "https", "celery") if run % 2 == 0 else ("celery", "https", "botfleet")
            )
            for system in order:
                if system == "botfleet":
                    figures = asyncio.run(botfleet_run(run_dir, options))
                elif system == "https":
                    figures = asyncio.run(botfleet_run(run_dir / "https", options, tls))
                else:
                    figures = celery_run(run_dir, redis_server, options)
                runs[system].append(figures)
                print(run_line(run, system, figures), flush=True)
    plain, https = medians(runs["botfleet"]), medians(runs["https"])
    table = comparison_table(plain, medians(runs["celery"]), options)
    table.notes.append(f"before: {load_before}; after: {load_line()}")
    pairs = list(zip(runs["botfleet"], runs["https"], strict=True))
    return Tables([table, tls_cost_table(plain, https, pairs, options)])


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs queued (default 10000)")
    add_fleet_run_arguments(parser)
    parser.add_argument(
        "--bot-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="what-if: environment of the bots, e.g. MAX_CONCURRENCY=32 (default: none; "
        "the published figures use default settings)",
    )
    parser.add_argument(
        "--claim-batch",
        type=int,
        metavar="N",
        help="what-if: the coordinator's claim_batch_size (default: its own, 5); with "
        "--bot-env MAX_CONCURRENCY=N it shows what the free-slots rule costs",
    )
    args = parser.parse_args(argv)
    if args.claim_batch is not None and args.claim_batch < 1:
        parser.error("--claim-batch must be at least 1")
    bot_env = dict(item.split("=", 1) for item in args.bot_env if "=" in item)
    if len(bot_env) != len(args.bot_env):
        parser.error("--bot-env takes NAME=VALUE")
    for name in ("jobs", "latency_jobs", "runs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup_jobs < 0:
        parser.error("--warmup-jobs must not be negative")
    return Options(
        args.jobs,
        args.latency_jobs,
        args.warmup_jobs,
        args.runs,
        args.timeout,
        args.format,
        args.workdir,
        bot_env,
        args.claim_batch,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    return run_benchmark(options, benchmark, prefix="bf-bench-")


if __name__ == "__main__":
    sys.exit(main())
