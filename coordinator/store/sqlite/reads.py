"""The read-only verbs of the SQLite store; they run on the reader connection."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from coordinator.store.base import (
    AttemptRecord,
    BotRecord,
    ClaimOutlook,
    JobRecord,
    StatsRecord,
)
from coordinator.store.sqlite.rows import (
    Tx,
    attempt_from_row,
    bot_from_row,
    dump_json,
    job_from_row,
    load_bot,
    maybe_from_us,
)

JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
_CURSOR = re.compile(r"^c([0-9a-f]{1,16})$")
_NO_CURSOR = 2**63 - 1  # above every seq: the first page


def encode_cursor(seq: int) -> str:
    return f"c{seq:x}"


def decode_cursor(cursor: str | None) -> int:
    """The seq a page starts below; ValueError for anything this store did not hand out."""
    if cursor is None:
        return _NO_CURSOR
    match = _CURSOR.match(cursor)
    if match is None:
        raise ValueError(f"malformed cursor {cursor!r}")
    return int(match.group(1), 16)


def get_job(tx: Tx, job_id: str) -> JobRecord | None:
    row = tx.one("job_by_id", {"id": job_id})
    return None if row is None else job_from_row(row)


def list_jobs(
    tx: Tx, state: str | None, op: str | None, limit: int, cursor: str | None
) -> tuple[list[JobRecord], str | None]:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    params = {"before": decode_cursor(cursor), "limit": limit + 1, "state": state, "op": op}
    if state is not None and op is not None:
        rows = tx.all("list_jobs_by_state_and_op", params)
    elif state is not None:
        rows = tx.all("list_jobs_by_state", params)
    elif op is not None:
        rows = tx.all("list_jobs_by_op", params)
    else:
        rows = tx.all("list_jobs", params)
    next_cursor = encode_cursor(rows[limit - 1]["seq"]) if len(rows) > limit else None
    return [job_from_row(row) for row in rows[:limit]], next_cursor


def list_attempts(tx: Tx, job_id: str) -> list[AttemptRecord]:
    return [attempt_from_row(row) for row in tx.all("attempts_of_job", {"job_id": job_id})]


def get_bot(tx: Tx, bot_id: str) -> BotRecord | None:
    return load_bot(tx, bot_id)


def list_bots(tx: Tx) -> list[BotRecord]:
    running: dict[str, list[str]] = {}
    for row in tx.all("running_job_ids_all"):
        running.setdefault(row["bot_id"], []).append(row["id"])
    return [bot_from_row(row, running.get(row["id"], [])) for row in tx.all("all_bots")]


def stats(tx: Tx, window_s: int) -> StatsRecord:
    by_state = dict.fromkeys(JOB_STATES, 0)
    by_op: dict[str, dict[str, int]] = {}
    for row in tx.all("count_jobs_by_op_and_state"):
        by_state[row["state"]] += row["n"]
        by_op.setdefault(row["op"], {})[row["state"]] = row["n"]
    bots = {"online": 0, "offline": 0}
    for row in tx.all("count_bots_by_online"):
        bots["online" if row["online"] else "offline"] = row["n"]
    since = tx.now - window_s * 1_000_000
    finished = {row["state"]: row["n"] for row in tx.all("count_finished_since", {"since": since})}
    oldest = tx.one("oldest_queued_created_at")
    return StatsRecord(
        jobs_by_state=by_state,
        jobs_by_op=by_op,
        bots_by_state=bots,
        succeeded_last_window=finished.get("succeeded", 0),
        failed_last_window=finished.get("failed", 0),
        window_s=window_s,
        oldest_queued_at=None if oldest is None else maybe_from_us(oldest["created_at"]),
    )


def next_run_at(tx: Tx, operations: Sequence[str]) -> datetime | None:
    row = tx.one("next_run_at", {"ops": dump_json(list(dict.fromkeys(operations)))})
    return None if row is None else maybe_from_us(row[0])


def claim_outlook(tx: Tx, bot_id: str, operations: Sequence[str]) -> ClaimOutlook:
    ops = dump_json(list(dict.fromkeys(operations)))
    row = tx.one("claim_outlook", {"bot_id": bot_id, "ops": ops})
    if row is None:  # one row always comes back; kept for the type checker
        return ClaimOutlook(bot_online=False, next_run_at=None)
    return ClaimOutlook(
        bot_online=bool(row["bot_online"]), next_run_at=maybe_from_us(row["next_run_at"])
    )
