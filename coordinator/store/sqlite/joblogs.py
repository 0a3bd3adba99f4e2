"""Job log lines on SQLite: appending a bot's batch under the cap, reading by cursor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from coordinator.store.joblogs import (
    LogAppend,
    LogAppendOutcome,
    LogLineRecord,
    LogPage,
    LogQuery,
    LogSizes,
    clean_line,
    fit,
    holder_refusal,
)
from coordinator.store.records import ReportOutcome
from coordinator.store.sqlite.rows import from_us, maybe_from_us, to_us
from coordinator.store.sqlite.tx import Tx


def append_logs(tx: Tx, batches: Sequence[LogAppend]) -> list[LogAppendOutcome]:
    return [_append(tx, batch) for batch in batches]


def _append(tx: Tx, batch: LogAppend) -> LogAppendOutcome:
    job = {"job_id": batch.job_id}
    holder = tx.one("log_holder", {**job, "attempt": batch.attempt, "bot_id": batch.bot_id})
    if holder is None or not holder["held"]:
        return LogAppendOutcome(holder_refusal(holder is not None))
    row = tx.one("lock_log_sizes", job)
    sizes = LogSizes() if row is None else _sizes(row)
    lines = [clean_line(line) for line in batch.lines]
    kept, after = fit(sizes, lines, batch.max_bytes)
    if kept:
        tx.many(
            "append_log_lines",
            (
                {
                    "job_id": batch.job_id,
                    "seq": sizes.last_seq + index,
                    "attempt": batch.attempt,
                    "ts": to_us(line.ts),
                    "level": line.level,
                    "text": line.text,
                }
                for index, line in enumerate(lines[:kept], start=1)
            ),
        )
    if after != sizes:
        tx.run(
            "put_log_sizes",
            {
                **job,
                "last_seq": after.last_seq,
                "bytes": after.bytes,
                "dropped_lines": after.dropped_lines,
                "dropped_bytes": after.dropped_bytes,
            },
        )
    return LogAppendOutcome(ReportOutcome.ACCEPTED, stored=kept, dropped=len(lines) - kept)


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
        lines=[
            LogLineRecord(
                seq=row["seq"],
                attempt=row["attempt"],
                ts=from_us(row["ts"]),
                level=row["level"],
                text=row["text"],
            )
            for row in rows
        ],
    )


def _sizes(row: Any) -> LogSizes:
    return LogSizes(
        last_seq=row["last_seq"],
        bytes=row["bytes"],
        dropped_lines=row["dropped_lines"],
        dropped_bytes=row["dropped_bytes"],
    )
