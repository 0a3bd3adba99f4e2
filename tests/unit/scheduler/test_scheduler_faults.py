"""The scheduler's part in the lifecycle: claim backoff, the open circuit, a claim given up,
a job cancelled before it began, deadlines on deliveries, crash accounting."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.agent.watchdog import Watchdog
from bot.errors import NetworkError, OutboxError, OverloadedError
from bot.jobs import Outcome, Registry, load_plugins
from bot.state import Job
from bot.testing import FakeCoordinator, ScaledClock
from bot.work.hooks import StandaloneHooks
from botfleet.clock import FakeClock
from botfleet.protocol import messages as m
from tests.support.processes import wait_until_async

from .conftest import MakeScheduler


async def eventually(predicate: Any, what: str) -> None:
    async def check() -> bool:
        return bool(predicate())

    await wait_until_async(check, 30.0, what)


class Hooks(StandaloneHooks):
    def __init__(self) -> None:
        self.backoffs: list[str | None] = []
        self.finished: list[Outcome] = []
        self.fatals: list[OutboxError] = []
        self.up = True

    def backing_off(self, reason: str | None) -> None:
        self.backoffs.append(reason)

    def reachable(self) -> bool:
        return self.up

    def job_finished(self, job: Job, outcome: Outcome) -> None:
        self.finished.append(outcome)

    def fatal(self, error: OutboxError) -> None:
        self.fatals.append(error)


async def run_until(loop: Any, predicate: Any, what: str) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(loop(stop))
    try:
        await eventually(predicate, what)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_a_failed_claim_backs_off_through_the_hooks(make_scheduler: MakeScheduler) -> None:
    fake = FakeCoordinator()
    fake.fail_next("claim", OverloadedError(503, "busy", retry_after_s=4.0))
    hooks = Hooks()
    clock = FakeClock()
    scheduler = make_scheduler(fake, clock=clock, hooks=hooks)

    await run_until(scheduler.claim_loop, lambda: fake.count("claim") >= 2, "claims again")

    assert hooks.backoffs[:2] == ["claim failed: busy", None]
    assert clock.slept[0] >= 4.0


async def test_a_claim_given_up_returns_nothing(make_scheduler: MakeScheduler) -> None:
    fake = FakeCoordinator()
    gate = fake.gates["claim"] = asyncio.Event()
    scheduler = make_scheduler(fake)
    assert scheduler.abort_claim() is False  # none on its way
    claim = asyncio.create_task(scheduler.claim(1, wait_ms=20_000))
    await eventually(lambda: fake.count("claim") == 1, "the claim held")

    assert scheduler.abort_claim() is True
    assert await asyncio.wait_for(claim, 30) == []
    assert scheduler.activity().name == "IDLE"
    gate.set()


async def test_a_claim_cancelled_with_its_task_still_raises(make_scheduler: MakeScheduler) -> None:
    fake = FakeCoordinator()
    fake.gates["claim"] = asyncio.Event()
    scheduler = make_scheduler(fake)
    claim = asyncio.create_task(scheduler.claim(1))
    await eventually(lambda: fake.count("claim") == 1, "the claim held")
    claim.cancel()
    with pytest.raises(asyncio.CancelledError):
        await claim


async def test_a_job_cancelled_before_it_began_still_reports(make_scheduler: MakeScheduler) -> None:
    hooks = Hooks()
    scheduler = make_scheduler(FakeCoordinator(), hooks=hooks)
    reports: list[m.ReportItem] = []
    task = scheduler.start(Job("job_1", "sum", {"a": 1, "b": 1}, attempt=2), reports.append)
    assert scheduler.cancel("job_1", "cancelled by the operator") is True
    assert scheduler.cancel("job_1", "again") is False  # already on its way out

    await asyncio.wait_for(task, 30)
    (report,) = reports
    assert (report.action, report.error, report.retryable) == (
        "fail",
        "cancelled by the operator",
        False,
    )
    assert hooks.finished[0].crash is None and scheduler.slots.in_use == 0


async def test_crashes_are_told_to_the_hooks(make_scheduler: MakeScheduler) -> None:
    async def broken(job: Job) -> None:
        raise ZeroDivisionError("oops")

    registry = load_plugins(Registry(), entry_points=())
    registry.register("broken", broken)
    hooks = Hooks()
    scheduler = make_scheduler(FakeCoordinator(), registry=registry, hooks=hooks)
    await scheduler.start(Job("job_1", "broken", {}))
    await scheduler.start(Job("job_2", "sum", {"a": 1}))  # bad input: the job's fault
    assert [o.crash for o in hooks.finished] == ["ZeroDivisionError: oops", None]


async def test_with_the_circuit_open_reports_go_straight_to_the_outbox(
    make_scheduler: MakeScheduler,
) -> None:
    fake = FakeCoordinator()
    hooks = Hooks()
    hooks.up = False
    scheduler = make_scheduler(fake, hooks=hooks)
    report = m.ReportItem(job_id="job_1", action="complete", result={})
    scheduler.reporting.pending.append(report)
    scheduler.reporting.ready.set()

    await run_until(scheduler.reporting.report_loop, lambda: len(scheduler.outbox) == 1, "kept")
    assert fake.count("complete") == 0 and scheduler.reporter.counts.kept == 1

    # The outbox loop waits for the coordinator too.
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.reporting.outbox_loop(stop))
    for _ in range(5):
        await asyncio.sleep(0)
    assert fake.count("complete") == 0
    hooks.up = True
    scheduler.reporting.flush_now.set()
    await eventually(lambda: fake.count("complete") == 1, "flushed once reachable")
    stop.set()
    await asyncio.wait_for(task, 30)


async def test_the_outbox_loop_honours_retry_after(make_scheduler: MakeScheduler) -> None:
    fake = FakeCoordinator()
    fake.fail_next("complete", OverloadedError(503, "busy", retry_after_s=9.0))
    clock = FakeClock()
    scheduler = make_scheduler(fake, clock=clock, hooks=Hooks())
    scheduler.outbox.append([m.ReportItem(job_id="job_x", action="complete", result={})])

    await run_until(scheduler.reporting.outbox_loop, lambda: fake.count("complete") >= 2, "retried")
    assert clock.slept[0] >= 9.0


async def test_a_delivery_past_its_deadline_is_kept(make_scheduler: MakeScheduler) -> None:
    fake = FakeCoordinator()
    fake.gates["complete"] = asyncio.Event()  # never opens
    clock = ScaledClock(0.001)
    watchdog = Watchdog(clock, tick_s=0.5)
    scheduler = make_scheduler(fake, clock=clock, hooks=Hooks(), watchdog=watchdog)
    report = m.ReportItem(job_id="job_1", action="complete", result={})
    scheduler.reporting.pending.append(report)
    stop = asyncio.Event()
    watching = asyncio.create_task(watchdog.run(stop))

    await run_until(scheduler.reporting.report_loop, lambda: len(scheduler.outbox) == 1, "given up")
    stop.set()
    await asyncio.wait_for(watching, 30)
    assert scheduler.outbox.pending() == [report] and watchdog.expired


async def test_a_kept_group_the_outbox_cannot_take_is_fatal(
    make_scheduler: MakeScheduler, tmp_path: Any
) -> None:
    import errno

    from bot.testing import FailingDisk

    disk = FailingDisk()
    hooks = Hooks()
    hooks.up = False
    scheduler = make_scheduler(FakeCoordinator(), hooks=hooks, disk=disk)
    disk.append_errno = errno.EIO
    report = m.ReportItem(job_id="job_1", action="complete", result={})
    scheduler.reporting.pending.append(report)

    await run_until(scheduler.reporting.report_loop, lambda: bool(hooks.fatals), "fatal")
    assert scheduler.reporting.unsaved == [report]


async def test_abandoning_waits_at_most_so_long(make_scheduler: MakeScheduler) -> None:
    release = asyncio.Event()

    async def stubborn(job: Job) -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue

    registry = Registry()
    registry.register("stubborn", stubborn)
    scheduler = make_scheduler(
        FakeCoordinator(), registry=registry, clock=ScaledClock(0.001), hooks=Hooks()
    )
    task = scheduler.start(Job("job_1", "stubborn", {}))
    await asyncio.sleep(0)
    assert await scheduler.abandon_jobs(wait_s=1.0) == 1
    assert not task.done()
    release.set()
    await asyncio.wait_for(task, 30)


async def test_network_errors_while_reporting_leave_reports_kept(
    make_scheduler: MakeScheduler,
) -> None:
    fake = FakeCoordinator()
    fake.fail_next("complete", NetworkError("reset"))
    scheduler = make_scheduler(fake, hooks=Hooks())
    scheduler.reporting.pending.append(m.ReportItem(job_id="job_1", action="complete", result={}))
    await run_until(scheduler.reporting.report_loop, lambda: len(scheduler.outbox) == 1, "kept")
