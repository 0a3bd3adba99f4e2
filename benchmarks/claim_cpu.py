"""Coordinator CPU per job on large claims, in one process, on SQLite or PostgreSQL.

An aiohttp test server (the real app) and a client: each round claims `--batch` jobs
with the previous round's reports riding on the claim (`report_on_claim`), as
botfleet's bot does when busy. Prints process CPU per job of the bulk submit and of
the measured rounds (the client included: it only encodes and decodes with msgspec).
Repeatable under `valgrind --tool=callgrind`, which counts instructions whatever the
load: run it with `--rounds 60` and `--rounds 10` and the same `--queued`, and divide
the difference by the jobs of 50 rounds. `--profile` prints a pyinstrument profile of
the event loop's thread (the SQLite writer thread is not in it: use py-spy for that).
With `--pg-dsn`, the store is PostgreSQL, on a fresh database made on that server and
dropped afterwards (the server's own CPU is not counted: it is another process).
A benchmark, not a test: it asserts nothing about speed.

    .venv/bin/python -m benchmarks.claim_cpu [--rounds 50] [--batch 64] [--queued 4160]
        [--pg-dsn postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
from aiohttp.test_utils import TestClient, TestServer

if not __package__:  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from botfleet.clock import SystemClock
from coordinator.app import create_app
from coordinator.config import ServerConfig
from coordinator.store import open_store

ADMIN = {"Authorization": "Bearer admin-secret"}
ENROLL = {"Authorization": "Bearer enroll-secret"}
JSON = {"Content-Type": "application/json"}


async def run(
    rounds: int,
    batch: int,
    warmup: int,
    queued: int,
    folder: Path,
    profile: bool,
    db_url: str | None = None,
) -> None:
    clock = SystemClock()
    config = ServerConfig(
        state_dir=folder / "state",
        admin_token="admin-secret",
        enroll_token="enroll-secret",
        # Leases that outlast a run under valgrind (50 times slower): no bot goes offline
        # and no job is taken back mid-run, as none would at full speed.
        bot_lease_ttl_s=3600.0,
        job_lease_ttl_s=3600.0,
    )
    store = open_store(db_url or f"sqlite:///{folder / 'botfleet.db'}", clock, lambda _: 0.0)
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(config, store, clock)))
    await client.start_server()
    try:
        bot_id, headers, instance_id = await _register(client)
        total = max(queued, (rounds + warmup + 1) * batch)
        submit_cpu = time.process_time()
        for start in range(0, total, 1000):
            new = [
                {"op": "sum", "payload": {"a": i, "b": 1}} for i in range(min(1000, total - start))
            ]
            data = msgspec.json.encode({"jobs": new})
            response = await client.post("/v1/jobs/bulk", data=data, headers={**ADMIN, **JSON})
            assert response.status == 201, await response.text()
        submit_cpu = time.process_time() - submit_cpu
        print(f"submit {total} jobs (bulk 1000): {submit_cpu / total * 1e6:.1f} µs CPU per job")
        headers = {**headers, **JSON}
        reports: list[dict[str, Any]] = []

        async def one_round() -> None:
            nonlocal reports
            body: dict[str, Any] = {"bot_id": bot_id, "operations": ["sum"], "limit": batch}
            if reports:
                body["instance_id"] = instance_id
                body["reports"] = reports
            data = msgspec.json.encode(body)
            response = await client.post("/v1/jobs/claim", data=data, headers=headers)
            answer = msgspec.json.decode(await response.read())
            assert response.status == 200, answer
            claimed = answer["jobs"]
            assert len(claimed) == batch, len(claimed)
            reports = [
                {
                    "job_id": job["id"],
                    "action": "complete",
                    "attempt": job["attempt"],
                    "result": {"sum": 2},
                }
                for job in claimed
            ]

        for _ in range(warmup):
            await one_round()
        profiler = None
        if profile:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005)
            profiler.start()
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(rounds):
            await one_round()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        if profiler is not None:
            profiler.stop()
            print(profiler.output_text(unicode=False, color=False, show_all=False))
        jobs = rounds * batch
        print(
            f"{rounds} rounds of claim {batch} + {batch} reports: "
            f"{cpu / jobs * 1e6:.1f} µs CPU per job, {wall / jobs * 1e6:.1f} µs wall per job"
        )
    finally:
        await client.close()


async def _register(client: TestClient[Any, Any]) -> tuple[str, dict[str, str], str]:
    body = {
        "bot_key": "bench",
        "instance_id": "bench-1",
        "version": "1.0.0",
        "capabilities": ["sum"],
        "resources": {"cpu_cores": 2, "mem_mb": 2048},
        "constraints": {"max_concurrency": 1000},
        "meta": {"hostname": "bench"},
    }
    response = await client.post("/v1/bots/register", json=body, headers=ENROLL)
    data = await response.json()
    assert response.status == 201, data
    return data["bot_id"], {"Authorization": f"Bearer {data['auth']['access_token']}"}, "bench-1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--queued",
        type=int,
        default=0,
        help="jobs to queue first, at least those the rounds take (the same in two runs "
        "with different --rounds: their difference is then the rounds' alone)",
    )
    parser.add_argument("--profile", action="store_true", help="print a pyinstrument profile")
    parser.add_argument("--pg-dsn", help="PostgreSQL instead of SQLite, on a fresh database")
    args = parser.parse_args()

    async def main_async(folder: Path) -> None:
        options = (args.rounds, args.batch, args.warmup, args.queued, folder, args.profile)
        if args.pg_dsn is None:
            await run(*options)
            return
        from benchmarks.postgres import fresh_database

        async with fresh_database(args.pg_dsn) as dsn:
            await run(*options, db_url=dsn)

    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(main_async(Path(folder)))


if __name__ == "__main__":
    main()
