"""Job log lines on SQLite: appending bots' batches under the cap, reading by cursor.

A call's batches (one per attempt, often of many jobs) are read with two statements and
written with two, whatever their number: SQLite's one writer is every job's bottleneck.
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
from coordinator.store.sqlite.rows import id_list, maybe_from_us
from coordinator.store.sqlite.tx import Tx


def append_logs(tx: Tx, batches: Sequence[LogAppend]) -> list[LogAppendOutcome]:
    if not batches:
        return []
    ids = id_list(dict.fromkeys(batch.job_id for batch in batches))
    held: set[tuple[str, int]] = set()
    for bot_id in {batch.bot_id for batch in batches}:  # one: a call comes from one bot
        params = {"ids": ids, "bot_id": bot_id}
        held.update((row["job_id"], row["attempt"]) for row in tx.all("log_attempts_held", params))
    sizes = {row["job_id"]: _sizes(row) for row in tx.all("lock_log_sizes", {"ids": ids})}
    plan = plan_appends(batches, held, sizes)
    if plan.chunks:
        tx.many(
            "append_log_lines",
            (
                {
                    "job_id": chunk.job_id,
                    "last_seq": chunk.last_seq,
                    "first_seq": chunk.first_seq,
                    "attempt": chunk.attempt,
                    "lines": chunk.lines,
                }
                for chunk in plan.chunks
            ),
        )
    if plan.sizes:
        tx.many(
            "put_log_sizes",
            (
                {
                    "job_id": job_id,
                    "last_seq": after.last_seq,
                    "bytes": after.bytes,
                    "dropped_lines": after.dropped_lines,
                    "dropped_bytes": after.dropped_bytes,
                }
                for job_id, after in plan.sizes.items()
            ),
        )
    return [
        _refused(tx, batch) if outcome is None else outcome
        for batch, outcome in zip(batches, plan.outcomes, strict=True)
    ]


def _refused(tx: Tx, batch: LogAppend) -> LogAppendOutcome:
    found = tx.one(
        "log_holder",
        {"job_id": batch.job_id, "attempt": batch.attempt, "bot_id": batch.bot_id},
    )
    return LogAppendOutcome(holder_refusal(found is not None))


def read_logs(tx: Tx, query: LogQuery) -> LogPage | None:
    head = tx.one("log_page_head", {"job_id": query.job_id})
    if head is None:
        return None
    params = {"job_id": query.job_id, "after": query.after, "limit": query.limit}
    if query.attempt is None:
        rows = tx.all("read_logs", params)
    else:
        rows = tx.all("read_logs_of_attempt", {**params, "attempt": query.attempt})
    return LogPage(
        job_state=head["state"],
        job_attempt=head["attempt"],
        finished_at=maybe_from_us(head["finished_at"]),
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
