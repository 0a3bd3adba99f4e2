"""`report_on_claim`: finished jobs' reports ride on the claim that refills their slots."""

from __future__ import annotations

import asyncio

import msgspec

from bot.errors import NetworkError
from bot.testing import FakeCoordinator
from bot.work.scheduler import Scheduler
from botfleet.clock import FakeClock
from botfleet.protocol import messages as m
from tests.unit.bot.conftest import MakeScheduler, RecordingHooks, eventually

FEATURES = (m.FEATURE_BATCH_REPORT, m.FEATURE_REPORT_ON_CLAIM)


class StillClock(FakeClock):
    """Time that never passes: a sleep ends only when an event it waits with is set, so
    which loop moves first depends on events alone, never on a timeout."""

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await asyncio.Event().wait()


async def _run_both(scheduler: Scheduler, fake: FakeCoordinator, finished: int) -> None:
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(scheduler.claim_loop(stop)),
        asyncio.create_task(scheduler.reporting.report_loop(stop)),
    ]
    try:
        await fake.wait_finished(finished)
        await eventually(lambda: not scheduler.reporting.pending, "reports settled")
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)


def _carried(fake: FakeCoordinator) -> list[m.ReportItem]:
    return [
        item for r in fake.requests("claim") if r.reports is not msgspec.UNSET for item in r.reports
    ]


async def test_reports_ride_on_the_next_claim(make_scheduler: MakeScheduler) -> None:
    fake = FakeCoordinator(features=FEATURES)
    for n in range(6):
        fake.add_job("sum", {"a": n, "b": 1})
    scheduler = make_scheduler(fake, clock=StillClock(), hooks=RecordingHooks(), features=FEATURES)

    await _run_both(scheduler, fake, 6)

    assert all(job.state == "succeeded" for job in fake.jobs.values())
    assert fake.count("report_batch") == 0  # no report went on its own
    assert sorted(item.job_id for item in _carried(fake)) == sorted(fake.jobs)
    first, *later = fake.requests("claim")
    assert first.reports is msgspec.UNSET and first.instance_id is msgspec.UNSET
    for request in later:
        if request.reports:
            assert request.wait_ms == 0 and request.instance_id == "inst_test"
    assert scheduler.reporter.counts.accepted == 6


async def test_without_the_feature_reports_go_on_their_own(make_scheduler: MakeScheduler) -> None:
    fake = FakeCoordinator(features=[m.FEATURE_BATCH_REPORT])
    for n in range(4):
        fake.add_job("sum", {"a": n, "b": 1})
    scheduler = make_scheduler(
        fake, clock=StillClock(), hooks=RecordingHooks(), features=[m.FEATURE_BATCH_REPORT]
    )

    await _run_both(scheduler, fake, 4)

    assert _carried(fake) == [] and fake.count("report_batch") >= 1


class FailingRideCoordinator(FakeCoordinator):
    """The first claim that carries reports is lost on the network."""

    def __init__(self) -> None:
        super().__init__(features=FEATURES)
        self.lost = 0

    async def claim(self, request: m.ClaimRequest) -> m.ClaimResponse:
        if request.reports and not self.lost:
            self.lost += 1
            self.calls.append(("claim", request))
            raise NetworkError("connection reset")
        return await super().claim(request)


async def test_a_failed_claim_gives_its_reports_back(make_scheduler: MakeScheduler) -> None:
    fake = FailingRideCoordinator()
    for n in range(2):
        fake.add_job("sum", {"a": n, "b": 1})
    scheduler = make_scheduler(fake, clock=StillClock(), hooks=RecordingHooks(), features=FEATURES)

    await _run_both(scheduler, fake, 2)

    # The claim loop backs off after the error; the report loop delivers them meanwhile.
    assert fake.lost == 1 and fake.count("report_batch") == 1
    assert all(job.state == "succeeded" for job in fake.jobs.values())
    assert len(scheduler.outbox) == 0


async def _finished_reports(
    make_scheduler: MakeScheduler, fake: FakeCoordinator
) -> tuple[Scheduler, m.ReportItem]:
    fake.add_job("sum", {"a": 1, "b": 2}, job_id="job_a")
    scheduler = make_scheduler(fake, clock=FakeClock(), hooks=RecordingHooks(), features=FEATURES)
    tasks = await scheduler.claim(1, sink=scheduler.reporting.queue)
    await asyncio.gather(*tasks)
    await eventually(lambda: len(scheduler.reporting.pending) == 1, "the report is queued")
    return scheduler, scheduler.reporting.pending[0]


async def test_conflicts_in_the_answer_are_dropped(make_scheduler: MakeScheduler) -> None:
    fake = FakeCoordinator(features=FEATURES)
    scheduler, report = await _finished_reports(make_scheduler, fake)
    fake.jobs["job_a"].state = "cancelled"  # meanwhile, an operator cancelled it

    await scheduler.claim(1)

    assert _carried(fake) == [report]
    assert scheduler.reporting.pending == [] and scheduler.reporter.counts.dropped == 1
    assert len(scheduler.outbox) == 0


async def test_an_answer_without_results_leaves_them_to_deliver(
    make_scheduler: MakeScheduler,
) -> None:
    fake = FakeCoordinator(features=FEATURES)
    scheduler, report = await _finished_reports(make_scheduler, fake)

    async def silent(request: m.ClaimRequest) -> m.ClaimResponse:
        fake.calls.append(("claim", request))
        return m.ClaimResponse(jobs=[])

    fake.claim = silent  # type: ignore[method-assign]
    await scheduler.claim(1)

    assert _carried(fake) == [report] and scheduler.reporting.pending == [report]
    assert scheduler.reporting.ready.is_set()


async def test_a_claim_given_up_gives_its_reports_back(make_scheduler: MakeScheduler) -> None:
    fake = FakeCoordinator(features=FEATURES)
    scheduler, report = await _finished_reports(make_scheduler, fake)
    fake.gates["claim"] = asyncio.Event()  # the claim hangs (a long-poll, a slow network)

    claim = asyncio.create_task(scheduler.claim(1))
    await eventually(lambda: fake.count("claim") == 2, "the claim left")
    assert scheduler.reporting.pending == []
    assert scheduler.abort_claim()

    assert await claim == [] and scheduler.reporting.pending == [report]


async def test_no_ride_while_the_circuit_is_open(make_scheduler: MakeScheduler) -> None:
    fake = FakeCoordinator(features=FEATURES)
    scheduler, _ = await _finished_reports(make_scheduler, fake)
    hooks = scheduler.hooks
    assert isinstance(hooks, RecordingHooks)
    hooks.reachable = lambda: False  # type: ignore[method-assign]

    await scheduler.claim(1)

    assert _carried(fake) == [] and len(scheduler.reporting.pending) == 1


async def test_unreported_names_every_report_not_yet_confirmed(
    make_scheduler: MakeScheduler,
) -> None:
    fake = FakeCoordinator(features=FEATURES)
    scheduler, _ = await _finished_reports(make_scheduler, fake)
    reporting = scheduler.reporting
    assert reporting.unreported() == ["job_a"]  # queued

    fake.gates["claim"] = asyncio.Event()
    claim = asyncio.create_task(scheduler.claim(1))
    await eventually(lambda: fake.count("claim") == 2, "the claim left")
    assert reporting.pending == [] and reporting.unreported() == ["job_a"]  # riding
    assert reporting.busy
    fake.gates["claim"].set()
    await claim
    assert reporting.unreported() == [] and not reporting.busy  # confirmed

    reporting.queue(m.ReportItem(job_id="job_b", action="complete", result={}))
    fake.gates["report_batch"] = asyncio.Event()
    stop = asyncio.Event()
    loop = asyncio.create_task(reporting.report_loop(stop))
    await eventually(lambda: fake.count("report_batch") == 1, "a delivery on its way")
    assert reporting.pending == [] and reporting.unreported() == ["job_b"]  # delivering
    stop.set()
    fake.gates["report_batch"].set()
    await asyncio.wait_for(loop, 30)

    reporting.keep([m.ReportItem(job_id="job_c", action="complete", result={})])
    assert reporting.unreported() == ["job_c"]  # kept in the outbox


async def test_a_job_alone_reports_on_the_next_claim_not_behind_a_long_poll(
    make_scheduler: MakeScheduler,
) -> None:
    """One job at a time (a latency-bound producer): the job ends before the claim loop
    asks again, so its report rides on that claim instead of waiting behind a long-poll."""
    features = (m.FEATURE_LONG_POLL, *FEATURES)
    fake = FakeCoordinator(features=features)
    fake.add_job("sum", {"a": 1, "b": 2})
    scheduler = make_scheduler(fake, clock=StillClock(), hooks=RecordingHooks(), features=features)

    await _run_both(scheduler, fake, 1)

    assert fake.count("report_batch") == 0
    first, second, *_ = fake.requests("claim")
    assert first.limit == 2 and first.reports is msgspec.UNSET
    assert second.limit == 2 and [r.job_id for r in second.reports] == ["job_1"]
    assert second.wait_ms == 0
