"""The reaper's housekeeping on SQLite: one batch of expiry, deletion and forgetting."""

from __future__ import annotations

from coordinator.store.retention import EXPIRED, Retention, SweepOutcome, cutoffs, sweep_outcome
from coordinator.store.sqlite.rows import from_us, id_list, to_us
from coordinator.store.sqlite.tx import Tx


def sweep(tx: Tx, retention: Retention) -> SweepOutcome:
    """Up to `retention.batch_size` rows of each kind, in this one transaction."""
    due = cutoffs(retention, from_us(tx.now))
    expired = tx.all("expire_queued_jobs", {"now": tx.now, "error": EXPIRED, "limit": due.limit})
    tx.changes.moved(expired)
    deleted: list[str] = []
    if due.finished_before is not None:
        params = {"before": to_us(due.finished_before), "limit": due.limit}
        deleted = [row["id"] for row in tx.all("delete_finished_jobs", params)]
        if deleted:
            ids = {"ids": id_list(deleted)}
            tx.run("delete_attempts_of_jobs", ids)
            tx.run("delete_logs_of_jobs", ids)
            tx.run("delete_log_sizes_of_jobs", ids)
    forgotten = 0
    if due.bots_before is not None:
        params = {"before": to_us(due.bots_before), "limit": due.limit}
        forgotten = len(tx.all("forget_bots", params))
    return sweep_outcome(due.limit, [row["id"] for row in expired], len(deleted), forgotten)
