"""The read-only verbs of the PostgreSQL store: lone statements outside a transaction
(each has its own snapshot), and the reads the write verbs share."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import coordinator.store.records as records
from coordinator.store.api_tokens import ApiTokenRecord, api_token_from_row
from coordinator.store.postgres.rows import (
    DECODE,
    as_datetime,
    attempt_from_row,
    bot_from_row,
    job_from_row,
)
from coordinator.store.postgres.tx import Tx
from coordinator.store.rows import decode_cursor, page_of, stats_from_rows


async def get_job(tx: Tx, job_id: str) -> records.JobRecord | None:
    row = await tx.fetchrow("get_job", job_id)
    return None if row is None else job_from_row(row)


async def unchanged(tx: Tx, job_id: str) -> tuple[records.ReportOutcome, records.JobRecord | None]:
    """An operator's verb that moved nothing: the job as it is, if there is one."""
    job = await get_job(tx, job_id)
    return (records.ReportOutcome.NOT_FOUND if job is None else records.ReportOutcome.CONFLICT), job


async def list_jobs(tx: Tx, query: records.JobQuery) -> tuple[list[records.JobRecord], str | None]:
    before = decode_cursor(query.cursor)
    args = (query.state, query.op, before, query.limit + 1)
    if query.submitted_by is not None:
        rows = await tx.fetch("list_jobs_of_submitter", *args, query.submitted_by)
    else:
        rows = await tx.fetch("list_jobs", *args)
    return page_of(rows, query.limit, DECODE)


async def list_attempts(tx: Tx, job_id: str) -> list[records.AttemptRecord]:
    return [attempt_from_row(row) for row in await tx.fetch("list_attempts", job_id)]


async def get_bot(tx: Tx, bot_id: str) -> records.BotRecord | None:
    row = await tx.fetchrow("get_bot", bot_id)
    return None if row is None else bot_from_row(row)


async def list_bots(tx: Tx) -> list[records.BotRecord]:
    return [bot_from_row(row) for row in await tx.fetch("list_bots")]


async def online_bot_routes(tx: Tx) -> list[records.BotRoute]:
    rows = await tx.fetch("online_bot_routes")
    return [records.BotRoute(tuple(row["operations"]), row["labels"] or {}) for row in rows]


async def api_token_by_hash(tx: Tx, token_hash: str) -> ApiTokenRecord | None:
    row = await tx.fetchrow("api_token_by_hash", token_hash)
    return None if row is None else api_token_from_row(row, DECODE)


async def list_api_tokens(tx: Tx) -> list[ApiTokenRecord]:
    return [api_token_from_row(row, DECODE) for row in await tx.fetch("list_api_tokens")]


async def stats(tx: Tx, window_s: int) -> records.StatsRecord:
    finished = await tx.fetchrow("finished_since", tx.now - timedelta(seconds=window_s))
    return stats_from_rows(
        await tx.fetch("count_jobs"),
        await tx.fetch("count_bots"),
        finished,
        await tx.fetchval("oldest_queued"),
        window_s,
    )


async def next_run_at(tx: Tx, operations: Sequence[str], bot_id: str | None) -> datetime | None:
    if bot_id is None:
        value = await tx.fetchval("next_run_at", list(operations))
    else:
        value = await tx.fetchval("next_run_at_for_bot", list(operations), bot_id)
    return None if value is None else as_datetime(value)


async def claim_outlook(
    tx: Tx, bot_id: str, operations: Sequence[str], claim_id: str | None
) -> records.ClaimOutlook:
    row = await tx.fetchrow("claim_outlook", bot_id, list(operations), claim_id)
    run_at = row["next_run_at"]
    return records.ClaimOutlook(
        bot_online=bool(row["bot_online"]),
        next_run_at=None if run_at is None else as_datetime(run_at),
        handed_out=bool(row["handed_out"]),
    )
