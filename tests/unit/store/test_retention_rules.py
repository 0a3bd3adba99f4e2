"""What a sweep may remove, decided without a database; durations as the flags take them."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import pytest

from botfleet.cli.argtypes import duration, duration_or_never
from coordinator.store.retention import Retention, SweepOutcome, cutoffs, sweep_outcome

NOW = datetime(2026, 1, 19, 10, 0, tzinfo=UTC)


def test_cutoffs_are_now_minus_each_retention() -> None:
    due = cutoffs(Retention(finished_s=60, bots_s=3600, batch_size=10), NOW)
    assert due.finished_before == NOW - timedelta(seconds=60)
    assert due.bots_before == NOW - timedelta(hours=1)
    assert (due.now, due.limit) == (NOW, 10)


def test_never_has_no_cutoff() -> None:
    due = cutoffs(Retention(finished_s=None, bots_s=None), NOW)
    assert (due.finished_before, due.bots_before) == (None, None)


def test_the_defaults_keep_a_week_in_batches_of_a_thousand() -> None:
    assert Retention() == Retention(finished_s=7 * 86_400, bots_s=7 * 86_400, batch_size=1000)


@pytest.mark.parametrize(
    ("changes", "named"),
    [({"finished_s": -1}, "finished_s"), ({"bots_s": -1}, "bots_s"), ({"batch_size": 0}, "batch")],
)
def test_a_retention_no_sweep_could_follow_is_refused(
    changes: dict[str, float], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        Retention(**changes)  # type: ignore[arg-type]


def test_a_full_batch_of_any_kind_means_more() -> None:
    assert sweep_outcome(3, ["b", "a"], 2, 0) == SweepOutcome(("a", "b"), 2, 0, more=False)
    assert sweep_outcome(3, [], 3, 0).more
    assert sweep_outcome(3, ["a", "b", "c"], 0, 0).more
    assert sweep_outcome(3, [], 0, 3).more
    assert not SweepOutcome() and SweepOutcome(bots_forgotten=1)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("30s", 30), ("5m", 300), ("2h", 7200), ("7d", 604_800), ("90", 90),
     ("1.5h", 5400), (" 2 m ", 120)],
)  # fmt: skip
def test_durations(text: str, seconds: float) -> None:
    assert duration(text) == seconds
    assert duration_or_never(text) == seconds


@pytest.mark.parametrize("text", ["", "x", "-1", "0", "0s", "7x", "1.5.h", "d"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="must be"):
        duration(text)


def test_never() -> None:
    assert duration_or_never("never") is None
    assert duration_or_never("NEVER") is None
