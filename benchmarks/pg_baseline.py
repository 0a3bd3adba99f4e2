"""The floor under `benchmarks.postgres`: a raw asyncpg claim-and-complete loop.

No HTTP, no coordinator, no leases or attempts: one table of jobs, and per worker one
connection that claims a batch with `FOR UPDATE SKIP LOCKED` and completes it with one
UPDATE, each in its own transaction, as a hand-written PostgreSQL queue does. What a
coordinator adds over this (the protocol, fencing, history, metrics) is what the
benchmark's ratio to this loop measures.
"""

from __future__ import annotations

import asyncio
import json
import time

import asyncpg

SCHEMA = """
CREATE TABLE raw_jobs (
    id      bigserial PRIMARY KEY,
    payload jsonb NOT NULL,
    state   text NOT NULL DEFAULT 'queued',
    result  jsonb
);
CREATE INDEX raw_jobs_queued ON raw_jobs (id) WHERE state = 'queued';
"""

CLAIM = """
UPDATE raw_jobs SET state = 'running'
WHERE id IN (
    SELECT id FROM raw_jobs WHERE state = 'queued' ORDER BY id LIMIT $1
    FOR UPDATE SKIP LOCKED
)
RETURNING id, payload
"""

COMPLETE = """
UPDATE raw_jobs SET state = 'succeeded', result = done.result
FROM unnest($1::bigint[], $2::jsonb[]) AS done (id, result)
WHERE raw_jobs.id = done.id AND raw_jobs.state = 'running'
"""


async def raw_loop_seconds(dsn: str, jobs: int, workers: int, batch: int) -> float:
    """Seconds for `workers` connections to claim and complete `jobs` sum jobs in
    batches of `batch` (queued first, not timed); every job is checked afterwards."""
    setup = await asyncpg.connect(dsn, timeout=10)
    try:
        await setup.execute(SCHEMA)
        await setup.executemany(
            "INSERT INTO raw_jobs (payload) VALUES ($1::jsonb)",
            [(json.dumps({"a": i, "b": 1}),) for i in range(jobs)],
        )
        await setup.execute("ANALYZE raw_jobs")
        connections = [await asyncpg.connect(dsn, timeout=10) for _ in range(workers)]
        try:
            started = time.perf_counter()
            await asyncio.gather(*[_work(conn, batch) for conn in connections])
            elapsed = time.perf_counter() - started
        finally:
            for conn in connections:
                await conn.close()
        wrong = await setup.fetchval(
            "SELECT count(*) FROM raw_jobs WHERE state <> 'succeeded' OR "
            "(result ->> 'result')::int <> (payload ->> 'a')::int + (payload ->> 'b')::int"
        )
        if wrong:
            raise RuntimeError(f"raw loop: {wrong} of {jobs} jobs did not succeed right")
        return elapsed
    finally:
        await setup.close()


async def _work(conn: asyncpg.Connection, batch: int) -> None:
    claim = await conn.prepare(CLAIM)
    complete = await conn.prepare(COMPLETE)
    while True:
        rows = await claim.fetch(batch)
        if not rows:
            return
        ids, results = [], []
        for row in rows:
            payload = json.loads(row["payload"])
            ids.append(row["id"])
            results.append(json.dumps({"result": payload["a"] + payload["b"]}))
        await complete.fetch(ids, results)
