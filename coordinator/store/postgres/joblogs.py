"""Job log lines on PostgreSQL: appending a bot's batch under the cap, reading by cursor.

A batch locks its job's `job_log_sizes` row, so batches of one job arriving at several
coordinators at once are numbered one after the other.
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
    clean_line,
    encode_chunk,
    fit,
    holder_refusal,
    lines_of_chunks,
)
from coordinator.store.postgres.rows import as_datetime
from coordinator.store.postgres.tx import Tx
from coordinator.store.records import ReportOutcome


async def append_logs(tx: Tx, batches: Sequence[LogAppend]) -> list[LogAppendOutcome]:
    # Each job's sizes row is locked in job id order, as every other transaction here
    # locks them, so two coordinators appending for the same jobs cannot deadlock.
    order = sorted(range(len(batches)), key=lambda i: (batches[i].job_id, i))
    outcomes: dict[int, LogAppendOutcome] = {}
    for index in order:
        outcomes[index] = await _append(tx, batches[index])
    return [outcomes[index] for index in range(len(batches))]


async def _append(tx: Tx, batch: LogAppend) -> LogAppendOutcome:
    holder = await tx.fetchrow("log_holder", batch.job_id, batch.attempt, batch.bot_id)
    if holder is None or not holder["held"]:
        return LogAppendOutcome(holder_refusal(holder is not None))
    await tx.execute("ensure_log_sizes", batch.job_id)
    sizes = _sizes(await tx.fetchrow("lock_log_sizes", batch.job_id))
    lines = [clean_line(line) for line in batch.lines]
    kept, after = fit(sizes, lines, batch.max_bytes)
    if kept:
        await tx.execute(
            "append_log_lines",
            batch.job_id,
            sizes.last_seq + kept,
            sizes.last_seq + 1,
            batch.attempt,
            encode_chunk(lines[:kept]),
        )
    if after != sizes:
        await tx.execute(
            "put_log_sizes",
            batch.job_id,
            after.last_seq,
            after.bytes,
            after.dropped_lines,
            after.dropped_bytes,
        )
    return LogAppendOutcome(ReportOutcome.ACCEPTED, stored=kept, dropped=len(lines) - kept)


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
