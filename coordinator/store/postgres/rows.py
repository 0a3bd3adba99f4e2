"""How the PostgreSQL store keeps values: asyncpg gives timestamps and, with the codec
set on each connection, JSON as Python values already."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

import coordinator.store.rows as rows
from coordinator.store.base import StoreError
from coordinator.store.records import AttemptRecord, BotRecord, JobRecord


async def init_connection(connection: Any) -> None:
    """`json` and `jsonb` columns travel as Python values (encoded with msgspec)."""
    for type_name in ("json", "jsonb"):
        await connection.set_type_codec(
            type_name,
            schema="pg_catalog",
            encoder=lambda value: msgspec.json.encode(value).decode(),
            decoder=msgspec.json.decode,
            format="text",
        )


def as_datetime(value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise StoreError(f"expected a timestamp, got {value!r}")
    return value


def _same(value: Any) -> Any:
    return value


DECODE = rows.Decode(moment=as_datetime, json=_same)


def job_from_row(row: Any) -> JobRecord:
    return rows.job_from_row(row, DECODE)


def jobs_from_rows(found: Sequence[Any]) -> list[JobRecord]:
    """Many rows of one statement at once (a claim's), each column found by position."""
    return rows.jobs_from_rows(found, list(found[0].keys()) if found else [], DECODE)


def bot_from_row(row: Any) -> BotRecord:
    """A row of `get_bot` and its kin, which carry the bot's running job ids."""
    running: Sequence[str] = row["running"]
    return rows.bot_from_row(row, running, DECODE)


def attempt_from_row(row: Any) -> AttemptRecord:
    return rows.attempt_from_row(row, DECODE)
