"""The long-poll's store calls: each claim observed and told to the hint."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from botfleet.clock import FakeClock
from coordinator.longpoll.drained import DrainedOperations
from coordinator.longpoll.store_calls import StoreCalls
from coordinator.store.base import ClaimInput, JobRecord, ReportInput, ReportOutcome
from tests.unit.coordinator.longpoll.support import NOW, QueueOnly, job_record


class ReportsToo(QueueOnly):
    async def report_and_claim(
        self, claim: ClaimInput, reports: Sequence[ReportInput]
    ) -> tuple[list[ReportOutcome], list[JobRecord] | None]:
        jobs = await self.claim_jobs(claim)
        return [ReportOutcome.ACCEPTED] * len(reports), jobs


def _calls(store: QueueOnly, events: list[str]) -> tuple[StoreCalls, DrainedOperations]:
    hint = DrainedOperations()
    calls = StoreCalls(
        store,  # type: ignore[arg-type]
        store.clock,
        hint,
        lambda _duration, jobs: events.append(f"claimed {[j.id for j in jobs]}"),
    )
    return calls, hint


async def test_a_claim_is_observed_and_noted_in_the_hint() -> None:
    store = QueueOnly(FakeClock(NOW))
    store.queued.append(job_record("job_1"))
    events: list[str] = []
    calls, hint = _calls(store, events)
    jobs = await calls.claim(ClaimInput("bot", ["sum"], 2, 60))
    assert [j.id for j in jobs or []] == ["job_1"]
    assert events == ["claimed ['job_1']"]
    assert not hint.jobs_likely(["sum"])  # short: the queue ran dry


async def test_an_unknown_bot_is_neither_observed_nor_noted() -> None:
    store = QueueOnly(FakeClock(NOW))
    store.known_bot = False
    events: list[str] = []
    calls, hint = _calls(store, events)
    assert await calls.claim(ClaimInput("bot", ["sum"], 2, 60)) is None
    assert events == [] and hint.jobs_likely(["sum"])


async def test_reports_are_told_before_the_claim_is_observed() -> None:
    store = ReportsToo(FakeClock(NOW))
    store.queued.extend([job_record("job_1"), job_record("job_2")])
    events: list[str] = []
    calls, hint = _calls(store, events)
    report = ReportInput("job_0", "complete", attempt=1, result={})
    jobs = await calls.report_and_claim(
        ClaimInput("bot", ["sum"], 2, 60),
        [report],
        lambda outcomes: events.append(f"reported {outcomes}"),
    )
    assert len(jobs or []) == 2
    assert events == [
        f"reported {[ReportOutcome.ACCEPTED]}",
        "claimed ['job_1', 'job_2']",
    ]
    assert hint.jobs_likely(["sum"])  # full: more may be there


async def test_due_in_counts_from_the_clock() -> None:
    clock = FakeClock(NOW)
    store = QueueOnly(clock)
    calls, _ = _calls(store, [])
    assert await calls.due_in(["sum"]) is None
    store.queued.append(job_record("later", run_at=NOW + timedelta(seconds=90)))
    assert await calls.due_in(["sum"]) == 90
    clock.advance(100)
    assert await calls.due_in(["sum"]) == -10
