"""Rows to store records, for every backend: jobs, bots, attempts, pages, stats.

Both backends' rows index their columns by name; what differs is how a moment and a
JSON value are stored, which each backend passes in as a `Decode`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any, overload

from coordinator.store.limits import key_names
from coordinator.store.records import (
    AssignmentRecord,
    AttemptRecord,
    BotRecord,
    ExpiryOutcome,
    JobRecord,
    StatsRecord,
)

JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
_CURSOR = re.compile(r"^c([0-9a-f]{1,16})$")


@dataclass(frozen=True, slots=True)
class Decode:
    """A backend's column types to Python values."""

    moment: Callable[[Any], datetime]
    json: Callable[[Any], Any]

    def maybe_moment(self, value: Any) -> datetime | None:
        return None if value is None else self.moment(value)


def job_from_row(row: Any, decode: Decode) -> JobRecord:
    # Claims and reports map many rows: the converters are looked up once.
    moment, json = decode.moment, decode.json
    started, finished, lease = row["started_at"], row["finished_at"], row["lease_until"]
    expires = row["expires_at"]
    result, requires, after = row["result"], row["requires"], row["after_ids"]
    return JobRecord(
        id=row["id"],
        op=row["op"],
        payload=json(row["payload"]),
        state=row["state"],
        priority=row["priority"],
        attempt=row["attempt"],
        max_attempts=row["max_attempts"],
        created_at=moment(row["created_at"]),
        run_at=moment(row["run_at"]),
        started_at=None if started is None else moment(started),
        finished_at=None if finished is None else moment(finished),
        lease_until=None if lease is None else moment(lease),
        attempts_used=row["attempt"] - row["attempt_base"],
        bot_id=row["bot_id"],
        result=None if result is None else json(result),
        error=row["error"],
        progress=row["progress"],
        progress_message=row["progress_message"],
        timeout_s=row["timeout_s"],
        idempotency_key=row["idempotency_key"],
        metadata=json(row["metadata"]),
        expires_at=None if expires is None else moment(expires),
        submitted_by=row["submitted_by"],
        requires=None if requires is None else json(requires),
        waiting_on=row["waiting_on"],
        limits=key_names(row["limit_key"]),
        after=() if after is None else tuple(json(after)),
    )


# The columns `jobs_from_rows` reads, in the order it unpacks them.
_JOB_COLUMNS = (
    "id", "op", "payload", "state", "priority", "attempt", "max_attempts", "created_at",
    "run_at", "started_at", "finished_at", "lease_until", "attempt_base", "bot_id", "result",
    "error", "progress", "progress_message", "timeout_s", "idempotency_key", "metadata",
    "expires_at", "submitted_by", "requires", "waiting_on", "limit_key", "after_ids",
)  # fmt: skip


def jobs_from_rows(found: Sequence[Any], keys: Sequence[str], decode: Decode) -> list[JobRecord]:
    """`job_from_row` of many rows of one statement (a claim's), whose columns `keys`
    names in order: each column is found by its position, once for all the rows, and
    taken from a row in one call, instead of by name 27 times a row."""
    if not found:
        return []
    columns = itemgetter(*[list(keys).index(name) for name in _JOB_COLUMNS])
    moment, json = decode.moment, decode.json
    jobs = []
    for row in found:
        (
            job_id, op, payload, state, priority, attempt, max_attempts, created_at,
            run_at, started, finished, lease, attempt_base, bot_id, result,
            error, progress, progress_message, timeout_s, idempotency_key, metadata,
            expires, submitted_by, requires, waiting_on, limit_key, after,
        ) = columns(row)  # fmt: skip
        # Positional, in JobRecord's field order: cheaper than keywords.
        job = JobRecord(
            job_id, op, json(payload), state, priority, attempt, max_attempts,
            moment(created_at), moment(run_at),
            None if started is None else moment(started),
            None if finished is None else moment(finished),
            None if lease is None else moment(lease),
            attempt - attempt_base, bot_id,
            None if result is None else json(result),
            error, progress, progress_message, timeout_s, idempotency_key,
            json(metadata),
            None if expires is None else moment(expires),
            submitted_by,
            None if requires is None else json(requires),
            waiting_on, key_names(limit_key),
            () if after is None else tuple(json(after)),
        )  # fmt: skip
        jobs.append(job)
    return jobs


def bot_from_row(row: Any, running: Sequence[str], decode: Decode) -> BotRecord:
    """`running`: the ids of the jobs it holds; those its last heartbeat listed as held
    (prefetched, not started) are told apart, as far as it still holds them."""
    listed = () if row["held"] is None else decode.json(row["held"])
    held = frozenset(listed).intersection(running) if listed else frozenset()
    return BotRecord(
        id=row["id"],
        bot_key=row["bot_key"],
        instance_id=row["instance_id"],
        name=row["name"],
        version=row["version"],
        capabilities=tuple(decode.json(row["capabilities"])),
        assignment=AssignmentRecord(
            operations=tuple(decode.json(row["operations"])),
            max_concurrency=row["max_concurrency"],
            paused=bool(row["paused"]),
        ),
        online=bool(row["online"]),
        registered_at=decode.moment(row["registered_at"]),
        token_hash=row["token_hash"],
        token_expires_at=decode.moment(row["token_expires_at"]),
        lease_until=decode.moment(row["lease_until"]),
        last_heartbeat=decode.maybe_moment(row["last_heartbeat"]),
        lifecycle=row["lifecycle"],
        pending_command=row["pending_command"],
        quarantined=bool(row["quarantined"]),
        running=tuple(job_id for job_id in running if job_id not in held),
        held=tuple(job_id for job_id in running if job_id in held),
        resources=decode.json(row["resources"]),
        constraints=decode.json(row["constraints"]),
        meta=decode.json(row["meta"]),
        metrics=decode.json(row["metrics"]),
        revoked_at=decode.maybe_moment(row["revoked_at"]),
        labels={} if row["labels"] is None else decode.json(row["labels"]),
    )


def attempt_from_row(row: Any, decode: Decode) -> AttemptRecord:
    return AttemptRecord(
        job_id=row["job_id"],
        attempt=row["attempt"],
        bot_id=row["bot_id"],
        claimed_at=decode.moment(row["claimed_at"]),
        lease_until=decode.moment(row["lease_until"]),
        ended_at=decode.maybe_moment(row["ended_at"]),
        outcome=row["outcome"],
        error=row["error"],
    )


def decode_cursor(cursor: str | None) -> int | None:
    """The seq a page starts below (None: the first page); ValueError for anything this
    store did not hand out."""
    if cursor is None:
        return None
    match = _CURSOR.match(cursor)
    if match is None:
        raise ValueError(f"malformed cursor {cursor!r}")
    return int(match.group(1), 16)


def page_of(rows: Sequence[Any], limit: int, decode: Decode) -> tuple[list[JobRecord], str | None]:
    """A page from `limit + 1` rows newest first: the jobs, and the cursor of the next
    page when the extra row shows there is one."""
    next_cursor = f"c{rows[limit - 1]['seq']:x}" if len(rows) > limit else None
    return [job_from_row(row, decode) for row in rows[:limit]], next_cursor


def check_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")


def stats_from_rows(
    job_counts: Iterable[Any],
    bot_counts: Iterable[Any],
    finished: Any,
    oldest_queued_at: datetime | None,
    window_s: int,
) -> StatsRecord:
    """From rows of (op, state, n), of (online, n), and one of (succeeded, failed)."""
    by_state = dict.fromkeys(JOB_STATES, 0)
    by_op: dict[str, dict[str, int]] = {}
    for row in job_counts:
        by_state[row["state"]] = by_state.get(row["state"], 0) + row["n"]
        by_op.setdefault(row["op"], {})[row["state"]] = row["n"]
    bots = {"online": 0, "offline": 0}
    for row in bot_counts:
        bots["online" if row["online"] else "offline"] = row["n"]
    return StatsRecord(
        jobs_by_state=by_state,
        jobs_by_op=by_op,
        bots_by_state=bots,
        succeeded_last_window=finished["succeeded"] or 0,
        failed_last_window=finished["failed"] or 0,
        window_s=window_s,
        oldest_queued_at=oldest_queued_at,
    )


def expiry_from_rows(offline: Sequence[str], moved: Sequence[Any]) -> ExpiryOutcome:
    """A reaper pass's outcome from the bots it took offline and the job rows (id,
    state) it moved: queued again or failed."""
    return ExpiryOutcome(
        bots_offline=tuple(offline),
        requeued=tuple(row["id"] for row in moved if row["state"] == "queued"),
        failed=tuple(row["id"] for row in moved if row["state"] == "failed"),
    )


@overload
def clean_text(value: str) -> str: ...
@overload
def clean_text(value: None) -> None: ...
def clean_text(value: str | None) -> str | None:
    """Client text with NUL made storable: PostgreSQL text cannot hold NUL, and SQLite's JSON
    functions end a string at one."""
    if value is None or "\x00" not in value:
        return value
    return value.replace("\x00", "\ufffd")
