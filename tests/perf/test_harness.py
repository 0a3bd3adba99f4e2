"""The benchmark helpers that compute and print figures."""

from __future__ import annotations

import math

import pytest

from benchmarks.harness import Table, fmt_ratio, medians, percentile, ratio


def test_percentile_interpolates_between_ranks() -> None:
    samples = [4.0, 1.0, 3.0, 2.0]
    assert percentile(samples, 0) == 1.0
    assert percentile(samples, 100) == 4.0
    assert percentile(samples, 50) == pytest.approx(2.5)
    assert percentile(list(map(float, range(1, 101))), 99) == pytest.approx(99.01)


def test_percentile_of_nothing_is_not_a_number() -> None:
    assert math.isnan(percentile([], 50))


def test_medians_take_each_key_over_the_runs_that_have_it() -> None:
    runs = [{"a": 1.0, "b": 10.0}, {"a": 3.0}, {"a": 2.0, "b": 30.0}]
    assert medians(runs) == {"a": 2.0, "b": 20.0}


def test_ratio_of_zero_is_shown_as_missing() -> None:
    assert math.isnan(ratio(1.0, 0.0))
    assert fmt_ratio(ratio(1.0, 0.0)) == "n/a"
    assert fmt_ratio(ratio(25.0, 2.5)) == "10.00×"


def test_table_renders_markdown_and_plain() -> None:
    table = Table("figures", ["measure", "value"])
    table.add_row("throughput", "1,000 /s")
    table.notes.append("machine: test")
    markdown = table.markdown()
    assert "| measure | value |" in markdown
    assert "| throughput | 1,000 /s |" in markdown
    plain = table.plain().splitlines()
    assert plain[0] == "figures"
    assert any(line.startswith("throughput") and "1,000 /s" in line for line in plain)
    assert plain[-1] == "machine: test"


def test_table_refuses_a_row_of_the_wrong_width() -> None:
    with pytest.raises(ValueError, match="2 cells"):
        Table("t", ["one"]).add_row("a", "b")


def test_markdown_marks_sub_rows_and_escapes_pipes() -> None:
    table = Table("t", ["measure", "value"])
    table.add_row("  after the first result", "a|b")
    assert "| ↳ after the first result | a\\|b |" in table.markdown()
