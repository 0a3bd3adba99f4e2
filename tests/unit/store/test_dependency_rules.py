"""The dependency rules both backends share, without a database."""

from __future__ import annotations

import pytest

from coordinator.store.dependencies import (
    Start,
    UnknownDependency,
    reference_problem,
    resolve_after,
    settle,
    start,
    waiting_for,
)


@pytest.mark.parametrize(
    ("entry", "index", "problem"),
    [
        ("job_abc", 0, None),
        ("#0", 1, None),
        ("#1", 1, "names the job itself"),
        ("#5", 1, "names a later job"),
        ("#", 1, "neither a job id"),
        ("#-1", 1, "neither a job id"),
        ("#٣", 4, "neither a job id"),
    ],
)
def test_references_name_earlier_jobs_only(entry: str, index: int, problem: str | None) -> None:
    found = reference_problem(entry, index)
    assert found is None if problem is None else (found is not None and problem in found)


def test_resolving_names_each_job_once() -> None:
    assert resolve_after(["#0", "job_x", "#1", "job_x", "#0"], ["job_a", "job_b"]) == [
        "job_a",
        "job_x",
        "job_b",
    ]


def test_a_new_job_waits_for_the_unfinished_ones_only() -> None:
    states = {"a": "succeeded", "b": "running", "c": "queued"}
    assert start(0, ["a", "b", "c"], states) == Start(pending=("b", "c"))
    assert start(0, ["a"], states) == Start()


def test_a_new_job_after_a_failed_one_starts_cancelled() -> None:
    decision = start(0, ["a", "b"], {"a": "running", "b": "failed"})
    assert decision == Start(error="dependency b failed")


def test_an_unknown_job_is_named() -> None:
    with pytest.raises(UnknownDependency) as raised:
        start(3, ["a", "nope"], {"a": "running"})
    assert (raised.value.index, raised.value.job_id) == (3, "nope")


def test_settling_releases_and_cancels() -> None:
    links = [("a", "x"), ("b", "x"), ("a", "y"), ("c", "y"), ("a", "z")]
    outcome = settle(links, {"a": "succeeded", "b": "succeeded", "c": "cancelled"})
    assert outcome.release == {"x": 2, "z": 1}
    assert outcome.cancel == {"y": "dependency c cancelled"}


def test_waiting_for_names_each_job_and_its_state() -> None:
    assert waiting_for([("job_b", "queued"), ("job_a", "running")]) == (
        "waiting for job_a (running), job_b (queued)"
    )
    assert waiting_for([]) is None
