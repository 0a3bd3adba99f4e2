"""The bot's values: a job's progress and cancellation, a claimed job, the assignment."""

from __future__ import annotations

import threading

import pytest

from bot.state import Assignment, Job
from botfleet.protocol import messages as m

GENEROUS_S = 30.0


def test_job_progress_checks_the_fraction() -> None:
    seen: list[tuple[str, float, str | None]] = []
    job = Job("job_1", "sum", {}, on_progress=lambda *args: seen.append(args))
    job.progress(1, "done")
    assert seen == [("job_1", 1.0, "done")]
    for bad in (-0.1, 1.5, True):
        with pytest.raises(ValueError, match="between 0 and 1"):
            job.progress(bad)
    Job("job_2", "sum", {}).progress(0.5)  # no sink: nothing happens


def test_a_cancelled_job_reads_so_in_a_handler_thread() -> None:
    job = Job("job_1", "sum", {})
    seen: list[bool] = []
    job.cancel()
    reader = threading.Thread(target=lambda: seen.append(job.cancelled()))
    reader.start()
    reader.join(GENEROUS_S)
    assert seen == [True]
    assert not Job("job_2", "sum", {}).cancelled()  # each job its own flag


def test_job_from_the_wire() -> None:
    claimed = m.ClaimedJob(
        id="job_1", op="sum", lease_until="2026-01-19T10:15:00Z", timeout_s=0, attempt=3
    )
    job = Job.from_claimed(claimed)
    assert job.lease_until is not None and job.lease_until.minute == 15
    assert job.timeout_s is None and job.attempt == 3
    unreadable = Job.from_claimed(m.ClaimedJob(id="job_2", op="sum", lease_until="tomorrow"))
    assert unreadable.lease_until is None


def test_assignment_claimable() -> None:
    capabilities = ("subtract", "sum")
    assert Assignment().claimable(capabilities) == capabilities
    assert Assignment(("sum", "multiply")).claimable(capabilities) == ("sum",)
    wire = m.Assignment(operations=["sum"], max_concurrency=3, paused=True)
    assert Assignment.from_wire(wire) == Assignment(("sum",), 3, True)
