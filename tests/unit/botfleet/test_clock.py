"""RFC 3339 timestamps on the wire: written by hand, read back exactly (to the millisecond)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from botfleet.clock import parse_rfc3339, to_rfc3339

MOMENTS = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)


def test_the_shapes() -> None:
    moment = datetime(2026, 1, 19, 10, 15, tzinfo=UTC)
    assert to_rfc3339(moment) == "2026-01-19T10:15:00Z"
    assert to_rfc3339(moment.replace(microsecond=7_500)) == "2026-01-19T10:15:00.007Z"
    assert to_rfc3339(moment.replace(microsecond=999)) == "2026-01-19T10:15:00.000Z"
    assert to_rfc3339(datetime(999, 3, 4, tzinfo=UTC)) == "0999-03-04T00:00:00Z"


def test_other_zones_are_written_in_utc() -> None:
    paris = timezone(timedelta(hours=1))
    assert to_rfc3339(datetime(2026, 1, 19, 11, 15, tzinfo=paris)) == "2026-01-19T10:15:00Z"


@given(MOMENTS)
def test_round_trip_to_the_millisecond(moment: datetime) -> None:
    expected = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    assert parse_rfc3339(to_rfc3339(moment)) == expected


@given(MOMENTS.filter(lambda m: m.year >= 1000))
def test_same_text_as_strftime(moment: datetime) -> None:
    old = moment.strftime("%Y-%m-%dT%H:%M:%S")
    old += f".{moment.microsecond // 1000:03d}Z" if moment.microsecond else "Z"
    assert to_rfc3339(moment) == old
