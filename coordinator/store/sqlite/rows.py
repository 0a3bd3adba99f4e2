"""How the SQLite store keeps values: moments as integer microseconds, JSON as text,
and list parameters as JSON arrays (opened in SQL with json_each)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

import coordinator.store.rows as rows
from coordinator.store.records import AttemptRecord, BotRecord, JobRecord

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_json_encoder = msgspec.json.Encoder()
_json_decoder = msgspec.json.Decoder()


def to_us(moment: datetime) -> int:
    """Microseconds since the Unix epoch, exactly (no float rounding)."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: the store needs timezone-aware UTC")
    return (moment - _EPOCH) // _MICROSECOND


def from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def maybe_to_us(moment: datetime | None) -> int | None:
    return None if moment is None else to_us(moment)


def maybe_from_us(value: int | None) -> datetime | None:
    return None if value is None else from_us(value)


def dump_json(value: Any) -> str:
    return _json_encoder.encode(value).decode()


def load_json(text: str | bytes) -> Any:
    return _json_decoder.decode(text)


def id_list(ids: Iterable[str]) -> str:
    """A list parameter: JSON, opened in SQL with json_each."""
    return dump_json(list(ids))


DECODE = rows.Decode(moment=from_us, json=load_json)


def job_from_row(row: Any) -> JobRecord:
    return rows.job_from_row(row, DECODE)


def jobs_from_rows(found: Sequence[Any]) -> list[JobRecord]:
    """Many rows of one statement at once (a claim's): the jobs of one claim share their
    lease and often their creation and run times, so each moment is converted once."""
    if not found:
        return []
    moments: dict[int, datetime] = {}

    def moment(value: int) -> datetime:
        converted = moments.get(value)
        if converted is None:
            converted = moments[value] = from_us(value)
        return converted

    decode = rows.Decode(moment=moment, json=load_json)
    return rows.jobs_from_rows(found, found[0].keys(), decode)


def bot_from_row(row: Any, running: Sequence[str]) -> BotRecord:
    return rows.bot_from_row(row, running, DECODE)


def attempt_from_row(row: Any) -> AttemptRecord:
    return rows.attempt_from_row(row, DECODE)
