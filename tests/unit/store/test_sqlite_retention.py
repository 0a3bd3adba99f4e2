"""SQLite reuses the pages retention frees: a steady workload keeps a steady file.

SQLite's default (auto_vacuum NONE) puts the pages of deleted rows on the freelist, and
later inserts take their pages from it before growing the file, so no vacuum is needed.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from botfleet.clock import FakeClock
from coordinator.store.base import ClaimInput, Retention
from coordinator.store.sqlite import SQLiteStore
from tests.unit.store.support import JOB_LEASE_TTL_S, complete, new_job, register

JOBS_PER_ROUND = 200
ROUND_S = 60.0
# Jobs are kept two rounds: the database holds about three rounds of rows at a time.
KEEP = Retention(finished_s=2 * ROUND_S, bots_s=None, batch_size=150)
WARM_UP_ROUNDS = 6
ROUNDS = 24


async def run_round(store: SQLiteStore, clock: FakeClock, bot_id: str) -> None:
    await store.submit_jobs([new_job(clock, payload={"a": i, "b": "x" * 200}) for i in range(100)])
    await store.submit_jobs([new_job(clock, payload={"a": i, "b": "y" * 200}) for i in range(100)])
    done = 0
    while done < JOBS_PER_ROUND:
        claimed = await store.claim_jobs(ClaimInput(bot_id, ("sum",), 100, JOB_LEASE_TTL_S))
        assert claimed
        await store.report(bot_id, [complete(job.id, value=job.id) for job in claimed])
        done += len(claimed)
    clock.advance(ROUND_S)
    while (await store.sweep(KEEP)).more:
        pass


def pages_in_use(path: Path) -> tuple[int, int]:
    """(pages in the file, pages on the freelist), as the committed database has them."""
    with sqlite3.connect(path) as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return int(pages), int(free)


async def test_a_steady_workload_keeps_a_steady_file(
    sqlite_store: SQLiteStore, db_path: Path, clock: FakeClock
) -> None:
    bot = await register(sqlite_store, clock, max_concurrency=1000)
    for _ in range(WARM_UP_ROUNDS):
        await run_round(sqlite_store, clock, bot.id)
    warm_pages, _ = pages_in_use(db_path)
    for _ in range(ROUNDS - WARM_UP_ROUNDS):
        await run_round(sqlite_store, clock, bot.id)
    pages, free = pages_in_use(db_path)

    # Three times the warm-up's rounds ran after it: without reuse the file would have
    # grown about fourfold. B-tree splits may still add a little.
    assert pages <= warm_pages * 1.1, (warm_pages, pages, free)
    counts = (await sqlite_store.stats()).jobs_by_state
    assert counts.get("succeeded", 0) <= 3 * JOBS_PER_ROUND
