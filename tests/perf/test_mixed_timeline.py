"""How `benchmarks.mixed` turns job timelines into its figures."""

from __future__ import annotations

import pytest

from benchmarks.mixed_timeline import (
    JobTrace,
    Stay,
    buffer_waits,
    free_intervals,
    lower_bound,
    makespan,
    merged,
    overlap,
)


def job(worker: str, since: float, started: float, ended: float, long: bool = False) -> JobTrace:
    return JobTrace(long, worker, started, ended, (Stay(worker, since, started),))


def test_lower_bound_takes_the_larger_of_work_over_slots_and_the_longest_job() -> None:
    assert lower_bound([2.0] * 8, 4, 1.0) == pytest.approx(5.0)  # 16 s over 4 slots
    assert lower_bound([2.0], 4, 1.0) == pytest.approx(3.0)  # one job: its length
    assert lower_bound([], 4, 1.0) == pytest.approx(1.0)


def test_makespan_runs_from_submission_to_the_last_end() -> None:
    traces = [job("a", 10.0, 10.1, 12.0), job("b", 10.0, 10.2, 11.0)]
    assert makespan(traces, 9.5) == pytest.approx(2.5)


def test_merged_joins_overlapping_and_touching_intervals() -> None:
    assert merged([(3.0, 4.0), (0.0, 1.0), (0.5, 2.0), (2.0, 2.5)]) == [(0.0, 2.5), (3.0, 4.0)]


def test_a_worker_is_free_while_it_runs_fewer_jobs_than_slots() -> None:
    runs = [(1.0, 3.0), (2.0, 5.0), (3.0, 4.0)]  # two at once from 2 to 4: a slot is handed on at 3
    assert free_intervals(runs, 2, 0.0, 6.0) == [(0.0, 2.0), (4.0, 6.0)]
    assert free_intervals(runs, 1, 0.0, 6.0) == [(0.0, 1.0), (5.0, 6.0)]
    assert free_intervals(runs, 2, 1.5, 4.5) == [(1.5, 2.0), (4.0, 4.5)]


def test_overlap_sums_the_covered_parts() -> None:
    intervals = [(0.0, 1.0), (2.0, 3.0), (4.0, 6.0)]
    ends = [end for _, end in intervals]
    assert overlap((0.5, 4.5), intervals, ends) == pytest.approx(0.5 + 1.0 + 0.5)
    assert overlap((1.0, 2.0), intervals, ends) == 0.0
    assert overlap((7.0, 8.0), intervals, ends) == 0.0


def test_a_long_job_held_while_the_other_worker_idles_is_counted() -> None:
    # Worker a runs two long jobs from 0 to 2 and holds a third until 2; worker b runs
    # one trivial job at 0.1 and then has nothing to do until the end (3.0).
    traces = [
        job("a", 0.0, 0.0, 2.0, long=True),
        job("a", 0.0, 0.0, 2.0, long=True),
        job("a", 0.0, 2.0, 3.0, long=True),
        job("b", 0.05, 0.1, 0.11),
    ]
    waits = buffer_waits(traces, 2, 3.0)
    assert waits.long_while_free_s == pytest.approx(2.0 - 0.05)  # b is there from 0.05
    assert waits.while_free_s == pytest.approx(2.0 - 0.05)
    assert waits.in_buffer_s == pytest.approx(2.0)


def test_a_job_held_while_the_other_worker_is_full_waits_for_nothing() -> None:
    traces = [
        job("b", 0.0, 0.0, 3.0, long=True),
        job("b", 0.0, 0.0, 3.0, long=True),
        job("a", 0.0, 0.0, 2.0, long=True),
        job("a", 0.0, 0.0, 2.0, long=True),
        job("a", 0.0, 2.0, 3.0, long=True),
    ]
    waits = buffer_waits(traces, 2, 3.0)
    assert waits.while_free_s == 0.0
    assert waits.in_buffer_s == pytest.approx(2.0)


def test_a_job_given_back_counts_its_stay_in_the_first_buffer_too() -> None:
    given_back = JobTrace(
        True, "b", 1.0, 2.0, (Stay("a", 0.0, 0.5), Stay("b", 0.9, 1.0))
    )  # held by a until 0.5 while b was free; b took it at 0.9 and ran it at 1.0
    traces = [
        given_back,
        job("a", 0.0, 0.0, 2.0),
        job("a", 0.0, 0.0, 2.0),
        job("b", 0.0, 0.0, 0.01),
    ]
    waits = buffer_waits(traces, 2, 2.0)
    assert waits.long_while_free_s == pytest.approx(0.5)
    assert waits.in_buffer_s == pytest.approx(0.6)
