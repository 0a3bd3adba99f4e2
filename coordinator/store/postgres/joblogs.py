"""Job log lines on PostgreSQL: appending a bot's batch under the cap, reading by cursor.

A call locks its jobs' `job_log_sizes` rows (in id order), so batches of one job arriving
at several coordinators at once are numbered one after the other; each call reads and
writes with a few statements, whatever its number of jobs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from coordinator.store.joblogs import (
    LogAppend,
    LogAppendOutcome,
    LogPage,
    LogQuery,
    LogSizes,
    holder_refusal,
    lines_of_chunks,
    plan_appends,
)
from coordinator.store.postgres.rows import as_datetime
from coordinator.store.postgres.tx import Tx


async def append_logs(tx: Tx, batches: Sequence[LogAppend]) -> list[LogAppendOutcome]:
    if not batches:
        return []
    ids = sorted({batch.job_id for batch in batches})
    held: set[tuple[str, int]] = set()
    for bot_id in {batch.bot_id for batch in batches}:  # one: a call comes from one bot
        rows = await tx.fetch("log_attempts_held", ids, bot_id)
        held.update((row["job_id"], row["attempt"]) for row in rows)
    mine = sorted({job_id for job_id, _ in held})
    sizes: dict[str, LogSizes] = {}
    if mine:
        # Rows to lock, locked in id order: calls for the same jobs take turns.
        await tx.execute("ensure_log_sizes", mine)
        for row in await tx.fetch("lock_log_sizes", mine):
            sizes[row["job_id"]] = _sizes(row)
    plan = plan_appends(batches, held, sizes)
    if plan.chunks:
        chunks = plan.chunks
        await tx.execute(
            "append_log_lines",
            [chunk.job_id for chunk in chunks],
            [chunk.last_seq for chunk in chunks],
            [chunk.first_seq for chunk in chunks],
            [chunk.attempt for chunk in chunks],
            [chunk.lines for chunk in chunks],
        )
    if plan.sizes:
        changed = list(plan.sizes.items())
        await tx.execute(
            "put_log_sizes",
            [job_id for job_id, _ in changed],
            [after.last_seq for _, after in changed],
            [after.bytes for _, after in changed],
            [after.dropped_lines for _, after in changed],
            [after.dropped_bytes for _, after in changed],
        )
    outcomes: list[LogAppendOutcome] = []
    for batch, outcome in zip(batches, plan.outcomes, strict=True):
        outcomes.append(await _refused(tx, batch) if outcome is None else outcome)
    return outcomes


async def _refused(tx: Tx, batch: LogAppend) -> LogAppendOutcome:
    found = await tx.fetchrow("log_holder", batch.job_id, batch.attempt, batch.bot_id)
    return LogAppendOutcome(holder_refusal(found is not None))


async def read_logs(tx: Tx, query: LogQuery) -> LogPage | None:
    head = await tx.fetchrow("log_page_head", query.job_id)
    if head is None:
        return None
    rows = await tx.fetch("read_logs", query.job_id, query.attempt, query.after, query.limit)
    finished_at = head["finished_at"]
    return LogPage(
        job_state=head["state"],
        job_attempt=head["attempt"],
        finished_at=None if finished_at is None else as_datetime(finished_at),
        sizes=_sizes(head),
        lines=lines_of_chunks(
            ((row["first_seq"], row["attempt"], row["lines"]) for row in rows),
            query.after,
            query.limit,
        ),
    )


def _sizes(row: Any) -> LogSizes:
    return LogSizes(
        last_seq=row["last_seq"],
        bytes=row["bytes"],
        dropped_lines=row["dropped_lines"],
        dropped_bytes=row["dropped_bytes"],
    )
