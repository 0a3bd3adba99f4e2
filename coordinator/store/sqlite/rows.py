"""Shared plumbing of the SQLite store's transactions: moments, JSON, and rows to records."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from coordinator.store.base import (
    AssignmentRecord,
    AttemptRecord,
    BotRecord,
    JobRecord,
    RetryDelay,
    StoreError,
)
from coordinator.store.queries import Queries

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_json_encoder = msgspec.json.Encoder()
_json_decoder = msgspec.json.Decoder()

Params = Mapping[str, Any]


def to_us(moment: datetime) -> int:
    """Microseconds since the Unix epoch, exactly (no float rounding)."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: the store needs timezone-aware UTC")
    return (moment - _EPOCH) // _MICROSECOND


def from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def maybe_from_us(value: int | None) -> datetime | None:
    return None if value is None else from_us(value)


def dump_json(value: Any) -> str:
    return _json_encoder.encode(value).decode()


def load_json(text: str | bytes) -> Any:
    return _json_decoder.decode(text)


def id_list(ids: Iterable[str]) -> str:
    """A list parameter: JSON, opened in SQL with json_each."""
    return dump_json(list(ids))


@dataclass(slots=True)
class Tx:
    """One transaction on the writer (or reader) connection, and what it changed.

    `available` counts the jobs that became queued, by operation, and `finished` the
    ids of jobs that became terminal; the store tells its listener after the commit.
    """

    conn: sqlite3.Connection
    queries: Queries
    now: int
    retry_delay: RetryDelay
    available: Counter[str] = field(default_factory=Counter)
    finished: list[str] = field(default_factory=list)

    def run(self, name: str, params: Params | None = None) -> sqlite3.Cursor:
        return self.conn.execute(self.queries[name], params or {})

    def many(self, name: str, rows: Iterable[Params]) -> None:
        self.conn.executemany(self.queries[name], rows)

    def one(self, name: str, params: Params | None = None) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.run(name, params).fetchone()
        return row

    def all(self, name: str, params: Params | None = None) -> list[sqlite3.Row]:
        rows: list[sqlite3.Row] = self.run(name, params).fetchall()
        return rows


def job_from_row(row: sqlite3.Row) -> JobRecord:
    result = row["result"]
    return JobRecord(
        id=row["id"],
        op=row["op"],
        payload=load_json(row["payload"]),
        state=row["state"],
        priority=row["priority"],
        attempt=row["attempt"],
        max_attempts=row["max_attempts"],
        created_at=from_us(row["created_at"]),
        run_at=from_us(row["run_at"]),
        started_at=maybe_from_us(row["started_at"]),
        finished_at=maybe_from_us(row["finished_at"]),
        lease_until=maybe_from_us(row["lease_until"]),
        attempts_used=row["attempt"] - row["attempt_base"],
        bot_id=row["bot_id"],
        result=None if result is None else load_json(result),
        error=row["error"],
        progress=row["progress"],
        progress_message=row["progress_message"],
        timeout_s=row["timeout_s"],
        idempotency_key=row["idempotency_key"],
        metadata=load_json(row["metadata"]),
    )


def attempt_from_row(row: sqlite3.Row) -> AttemptRecord:
    return AttemptRecord(
        job_id=row["job_id"],
        attempt=row["attempt"],
        bot_id=row["bot_id"],
        claimed_at=from_us(row["claimed_at"]),
        lease_until=from_us(row["lease_until"]),
        ended_at=maybe_from_us(row["ended_at"]),
        outcome=row["outcome"],
    )


def bot_from_row(row: sqlite3.Row, running: Sequence[str]) -> BotRecord:
    return BotRecord(
        id=row["id"],
        bot_key=row["bot_key"],
        instance_id=row["instance_id"],
        name=row["name"],
        version=row["version"],
        capabilities=tuple(load_json(row["capabilities"])),
        assignment=AssignmentRecord(
            operations=tuple(load_json(row["operations"])),
            max_concurrency=row["max_concurrency"],
            paused=bool(row["paused"]),
        ),
        online=bool(row["online"]),
        registered_at=from_us(row["registered_at"]),
        token_hash=row["token_hash"],
        token_expires_at=from_us(row["token_expires_at"]),
        lease_until=from_us(row["lease_until"]),
        last_heartbeat=maybe_from_us(row["last_heartbeat"]),
        lifecycle=row["lifecycle"],
        pending_command=row["pending_command"],
        quarantined=bool(row["quarantined"]),
        running=tuple(running),
        resources=load_json(row["resources"]),
        constraints=load_json(row["constraints"]),
        meta=load_json(row["meta"]),
        metrics=load_json(row["metrics"]),
    )


def load_bot(tx: Tx, bot_id: str) -> BotRecord | None:
    row = tx.one("bot_by_id", {"id": bot_id})
    if row is None:
        return None
    running = [r["id"] for r in tx.all("running_job_ids_of_bot", {"bot_id": bot_id})]
    return bot_from_row(row, running)


def require_bot(tx: Tx, bot_id: str) -> BotRecord:
    """The bot this transaction just read or wrote."""
    bot = load_bot(tx, bot_id)
    if bot is None:
        raise StoreError(f"bot {bot_id} vanished inside its own transaction")
    return bot
