"""Job durations land in the right cumulative buckets."""

from __future__ import annotations

from bot.work.durations import BUCKETS_S, Durations


def test_cumulative_buckets_and_sum() -> None:
    durations = Durations()
    for seconds in (0.0005, 0.003, 0.003, 2.0, 1000.0):
        durations.observe("sum", seconds)
    durations.observe("resize", 0.2)
    entry = durations.by_op["sum"]
    cumulative = dict(entry.cumulative())
    assert cumulative["0.001"] == 1
    assert cumulative["0.005"] == 3
    assert cumulative["2.5"] == 4
    assert cumulative[str(BUCKETS_S[-1])] == 4
    assert cumulative["+Inf"] == 5 == entry.count
    assert abs(entry.sum_s - 1002.0065) < 1e-9
    assert durations.by_op["resize"].count == 1


def test_a_duration_on_a_bound_counts_in_that_bucket() -> None:
    durations = Durations()
    durations.observe("sum", 0.01)
    assert dict(durations.by_op["sum"].cumulative())["0.01"] == 1
