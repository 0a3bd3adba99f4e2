"""The read-only verbs of the SQLite store, and the reads the write verbs share."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import coordinator.store.records as records
from coordinator.store.api_tokens import ApiTokenRecord, api_token_from_row
from coordinator.store.base import StoreError
from coordinator.store.rows import decode_cursor, page_of, stats_from_rows
from coordinator.store.sqlite.rows import (
    DECODE,
    attempt_from_row,
    bot_from_row,
    dump_json,
    job_from_row,
    load_json,
    maybe_from_us,
)
from coordinator.store.sqlite.tx import Tx

_FIRST_PAGE = 2**63 - 1  # above every seq
# INDEXED BY differs with the filters, so each combination is its own statement.
_LIST_JOBS = {
    (False, False): "list_jobs",
    (True, False): "list_jobs_by_state",
    (False, True): "list_jobs_by_op",
    (True, True): "list_jobs_by_state_and_op",
}


def get_job(tx: Tx, job_id: str) -> records.JobRecord | None:
    row = tx.one("get_job", {"id": job_id})
    return None if row is None else job_from_row(row)


def unchanged(tx: Tx, job_id: str) -> tuple[records.ReportOutcome, records.JobRecord | None]:
    """An operator's verb that moved nothing: the job as it is, if there is one."""
    job = get_job(tx, job_id)
    return (records.ReportOutcome.NOT_FOUND if job is None else records.ReportOutcome.CONFLICT), job


def list_jobs(tx: Tx, query: records.JobQuery) -> tuple[list[records.JobRecord], str | None]:
    before = decode_cursor(query.cursor)
    params = {
        "before": _FIRST_PAGE if before is None else before,
        "limit": query.limit + 1,
        "state": query.state,
        "op": query.op,
    }
    if query.submitted_by is not None:
        rows = tx.all("list_jobs_of_submitter", {**params, "submitted_by": query.submitted_by})
    else:
        rows = tx.all(_LIST_JOBS[(query.state is not None, query.op is not None)], params)
    return page_of(rows, query.limit, DECODE)


def list_attempts(tx: Tx, job_id: str) -> list[records.AttemptRecord]:
    return [attempt_from_row(row) for row in tx.all("list_attempts", {"job_id": job_id})]


def load_bot(tx: Tx, bot_id: str) -> records.BotRecord | None:
    row = tx.one("get_bot", {"id": bot_id})
    if row is None:
        return None
    # SQLite has no arrays: the running jobs are a second statement.
    running = [r["id"] for r in tx.all("running_job_ids_of_bot", {"bot_id": bot_id})]
    return bot_from_row(row, running)


def api_token_by_hash(tx: Tx, token_hash: str) -> ApiTokenRecord | None:
    row = tx.one("api_token_by_hash", {"token_hash": token_hash})
    return None if row is None else api_token_from_row(row, DECODE)


def list_api_tokens(tx: Tx) -> list[ApiTokenRecord]:
    return [api_token_from_row(row, DECODE) for row in tx.all("list_api_tokens")]


def require_bot(tx: Tx, bot_id: str) -> records.BotRecord:
    """The bot this transaction just read or wrote."""
    bot = load_bot(tx, bot_id)
    if bot is None:
        raise StoreError(f"bot {bot_id} vanished inside its own transaction")
    return bot


def list_bots(tx: Tx) -> list[records.BotRecord]:
    running: dict[str, list[str]] = {}
    for row in tx.all("running_job_ids_all"):
        running.setdefault(row["bot_id"], []).append(row["id"])
    return [bot_from_row(row, running.get(row["id"], [])) for row in tx.all("list_bots")]


def online_bot_routes(tx: Tx) -> list[records.BotRoute]:
    return [
        records.BotRoute(
            tuple(load_json(row["operations"])),
            {} if row["labels"] is None else load_json(row["labels"]),
        )
        for row in tx.all("online_bot_routes")
    ]


def stats(tx: Tx, window_s: int) -> records.StatsRecord:
    finished = tx.one("finished_since", {"since": tx.now - window_s * 1_000_000})
    oldest = tx.one("oldest_queued")
    return stats_from_rows(
        tx.all("count_jobs"),
        tx.all("count_bots"),
        finished,
        None if oldest is None else maybe_from_us(oldest["created_at"]),
        window_s,
    )


def next_run_at(tx: Tx, operations: Sequence[str], bot_id: str | None) -> datetime | None:
    ops = dump_json(list(dict.fromkeys(operations)))
    if bot_id is None:
        row = tx.one("next_run_at", {"ops": ops})
    else:
        row = tx.one("next_run_at_for_bot", {"ops": ops, "bot_id": bot_id})
    return None if row is None else maybe_from_us(row[0])


def claim_outlook(
    tx: Tx, bot_id: str, operations: Sequence[str], claim_id: str | None
) -> records.ClaimOutlook:
    ops = dump_json(list(dict.fromkeys(operations)))
    row = tx.one("claim_outlook", {"bot_id": bot_id, "ops": ops, "claim_id": claim_id})
    if row is None:  # one row always comes back; kept for the type checker
        return records.ClaimOutlook(bot_online=False, next_run_at=None)
    return records.ClaimOutlook(
        bot_online=bool(row["bot_online"]),
        next_run_at=maybe_from_us(row["next_run_at"]),
        handed_out=bool(row["handed_out"]),
    )
