"""Jobs a bot gives back unstarted (prefetch) in the PostgreSQL store: one transaction.

The jobs are locked first (id order), so a report or a lease expiry of another
coordinator either ran before (the release then finds the attempt over: CONFLICT) or
waits for it.
"""

from __future__ import annotations

from collections.abc import Sequence

from coordinator.store.base import StoreError
from coordinator.store.postgres.tx import Tx
from coordinator.store.releases import (
    HeldJob,
    ReleaseInput,
    ReleaseOutcome,
    decide_releases,
)


async def release_jobs(tx: Tx, bot_id: str, items: Sequence[ReleaseInput]) -> list[ReleaseOutcome]:
    ids = sorted({item.job_id for item in items})
    jobs = {
        row["id"]: HeldJob(row["op"], row["state"], row["attempt"], row["bot_id"])
        for row in await tx.fetch("jobs_for_release", ids)
    }
    before = {
        (row["job_id"], row["attempt"])
        for row in await tx.fetch("unstarted_attempts_of_bot", list(jobs), bot_id)
    }
    decision = decide_releases(bot_id, items, jobs, before)
    if decision.to_release:
        job_ids = [job_id for job_id, _ in decision.to_release]
        attempts = [attempt for _, attempt in decision.to_release]
        moved = await tx.fetchval("release_jobs", job_ids, attempts, bot_id, tx.now)
        if moved != len(job_ids):  # the jobs are locked: the fence cannot fail, unless a bug
            raise StoreError(f"release moved {moved} of {len(job_ids)} jobs")
        tx.changes.ops.extend(decision.ops)
    return decision.outcomes
