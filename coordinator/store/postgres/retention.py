"""The reaper's housekeeping on PostgreSQL: one batch of expiry, deletion and forgetting;
and whether the server reclaims what it deletes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from coordinator.store.postgres.tx import Tx
from coordinator.store.retention import EXPIRED, Retention, SweepOutcome, cutoffs, sweep_outcome


async def sweep(tx: Tx, retention: Retention) -> SweepOutcome:
    """Up to `retention.batch_size` rows of each kind, in this one transaction; rows
    another coordinator's sweep holds are left to it (SKIP LOCKED)."""
    due = cutoffs(retention, tx.now)
    expired = await tx.fetch("expire_queued_jobs", tx.now, EXPIRED, due.limit)
    tx.changes.moved(expired)
    deleted = 0
    if due.finished_before is not None:
        deleted = int(await tx.fetchval("delete_finished_jobs", due.finished_before, due.limit))
    forgotten = 0
    if due.bots_before is not None:
        forgotten = int(await tx.fetchval("forget_bots", due.bots_before, due.limit))
    return sweep_outcome(due.limit, [row["id"] for row in expired], deleted, forgotten)


SettingReader = Callable[[str], Awaitable[str]]
"""The value of a PostgreSQL server setting by name (`current_setting`)."""


async def vacuum_warnings(setting: SettingReader, retention: Retention) -> list[str]:
    """What an operator should hear at start-up when retention deletes finished jobs but
    the server never vacuums them: the deleted rows' space is then never reused, and the
    database grows as if nothing were deleted. Autovacuum needs both `autovacuum` and
    `track_counts` on."""
    if retention.finished_s is None:
        return []
    off = [name for name in ("autovacuum", "track_counts") if not _is_on(await setting(name))]
    if not off:
        return []
    return [
        f"PostgreSQL has {' and '.join(f'{name} off' for name in off)}: the finished jobs "
        "--retain-finished deletes leave their space behind and the database keeps growing; "
        "turn autovacuum on (with track_counts) or VACUUM the jobs and attempts tables "
        "regularly"
    ]


def _is_on(value: str) -> bool:
    # PostgreSQL's boolean spellings (it reports `on`/`off`; the rest are accepted on input).
    return value.strip().lower() in ("on", "true", "yes", "1", "t", "y")
