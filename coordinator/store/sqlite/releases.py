"""Jobs a bot gives back unstarted (prefetch) in the SQLite store: one transaction."""

from __future__ import annotations

from collections.abc import Sequence

from coordinator.store.releases import (
    HeldJob,
    ReleaseInput,
    ReleaseOutcome,
    decide_releases,
)
from coordinator.store.sqlite.rows import id_list
from coordinator.store.sqlite.tx import Tx


def release_jobs(tx: Tx, bot_id: str, items: Sequence[ReleaseInput]) -> list[ReleaseOutcome]:
    ids = id_list(dict.fromkeys(item.job_id for item in items))
    jobs = {
        row["id"]: HeldJob(row["op"], row["state"], row["attempt"], row["bot_id"])
        for row in tx.all("jobs_for_release", {"ids": ids})
    }
    before = {
        (row["job_id"], row["attempt"])
        for row in tx.all("unstarted_attempts_of_bot", {"ids": ids, "bot_id": bot_id})
    }
    decision = decide_releases(bot_id, items, jobs, before)
    if decision.to_release:
        # The attempts first, while the jobs still run under them (no writable CTEs).
        params = [
            {"job_id": job_id, "attempt": attempt, "bot_id": bot_id, "now": tx.now}
            for job_id, attempt in decision.to_release
        ]
        tx.many("end_unstarted_attempt", params)
        tx.many("release_jobs", params)
        tx.changes.ops.extend(decision.ops)
    return decision.outcomes
