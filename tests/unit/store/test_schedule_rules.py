"""Due times of schedules (`coordinator.store.schedules`), without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from coordinator.store.schedules import (
    ScheduleInvalid,
    Timing,
    check_timing,
    due_after,
    first_due,
)

NOW = datetime(2026, 1, 19, 10, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("timing", "field"),
    [
        (Timing(), "cron"),
        (Timing(cron="* * * * *", every_s=5), "cron"),
        (Timing(every_s=0), "every_s"),
        (Timing(cron="61 * * * *"), "cron"),
        (Timing(cron="* * * * *", timezone="Nowhere/City"), "timezone"),
        (Timing(every_s=5, timezone="../etc/passwd"), "timezone"),
    ],
)
def test_unusable_timings_name_their_field(timing: Timing, field: str) -> None:
    with pytest.raises(ScheduleInvalid) as raised:
        check_timing(timing)
    assert raised.value.field == field


def test_an_interval_counts_from_its_start_and_skips_what_was_missed() -> None:
    timing = Timing(every_s=60)
    assert first_due(timing, NOW) == NOW + timedelta(seconds=60)
    due = NOW + timedelta(seconds=60)
    assert due_after(timing, due, due) == due + timedelta(seconds=60)
    # Fired 10.5 minutes late: the next is back on the beat, past the present.
    late = due + timedelta(seconds=630)
    assert due_after(timing, due, late) == due + timedelta(seconds=660)


def test_cron_follows_the_wall_clock_of_its_zone_across_a_dst_change() -> None:
    timing = Timing(cron="0 9 * * *", timezone="Europe/Paris")
    # 2026-03-29: Paris moves from UTC+1 to UTC+2.
    before = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    assert first_due(timing, before) == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)
    after = datetime(2026, 3, 29, 7, 0, tzinfo=UTC)
    assert due_after(timing, after, after) == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    assert first_due(Timing(cron="0 9 * * *"), before) == datetime(2026, 3, 29, 9, tzinfo=UTC)
