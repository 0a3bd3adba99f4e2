"""The scheduler's loops on their own: claim, report, outbox and progress, with errors."""

from __future__ import annotations

import asyncio
import errno
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

from bot.errors import (
    AuthError,
    NetworkError,
    NotFoundError,
    OutboxError,
    OutboxFullError,
    OverloadedError,
    ServerError,
)
from bot.jobs import Registry, load_plugins
from bot.state import BotState, Job
from bot.testing import FailingDisk, FakeCoordinator, ScaledClock
from bot.work.hooks import StandaloneHooks
from bot.work.running_jobs import RunningJobs
from botfleet.clock import FakeClock
from botfleet.protocol import messages as m
from tests.support.processes import wait_until_async

from .conftest import MakeScheduler


async def eventually(predicate: Callable[[], bool], what: str) -> None:
    async def check() -> bool:
        return predicate()

    await wait_until_async(check, 30.0, what)


class Hooks(StandaloneHooks):
    def __init__(self, renewed: bool = True) -> None:
        self.renewed = renewed
        self.renewals = 0
        self.fatals: list[OutboxError] = []
        self.activities: list[BotState] = []
        self.allowed = True

    def may_claim(self) -> bool:
        return self.allowed

    def activity_changed(self, activity: BotState) -> None:
        self.activities.append(activity)

    async def renew(self, generation: int) -> bool:
        self.renewals += 1
        return self.renewed

    def fatal(self, error: OutboxError) -> None:
        self.fatals.append(error)


async def run_until(
    loop: Callable[[asyncio.Event], Any], predicate: Callable[[], bool], what: str
) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(loop(stop))
    try:
        await eventually(predicate, what)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def test_standalone_hooks() -> None:
    hooks = StandaloneHooks()
    assert hooks.may_claim()
    hooks.activity_changed(BotState.IDLE)
    with pytest.raises(OutboxFullError):
        hooks.fatal(OutboxFullError())
    assert asyncio.run(hooks.renew(1)) is False


async def test_claim_needs_a_registration(make_scheduler: MakeScheduler) -> None:
    scheduler = make_scheduler(FakeCoordinator())
    scheduler.session.bot_id = None
    with pytest.raises(RuntimeError, match="before registration"):
        await scheduler.claim(1)


async def test_extra_and_duplicate_jobs(
    make_scheduler: MakeScheduler, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeCoordinator()
    scheduler = make_scheduler(fake)

    async def generous(request: m.ClaimRequest) -> m.ClaimResponse:
        return m.ClaimResponse(jobs=[m.ClaimedJob(id=f"job_{n}", op="sum") for n in range(3)])

    fake.claim = generous  # type: ignore[method-assign]
    scheduler.running.add(Job("job_0", "sum", {}))
    tasks = await scheduler.claim(1)
    assert [task.get_name() for task in tasks] == ["job:job_1", "job:job_2"]
    await asyncio.gather(*tasks)
    assert "got 3: running them all" in caplog.text and "handed out again" in caplog.text
    scheduler.running.remove("job_0")


class SleepCountingCoordinator(FakeCoordinator):
    """Notes how many sleeps the bot's clock had done at each claim."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.slept_at_claim: list[int] = []

    async def claim(self, request: m.ClaimRequest) -> m.ClaimResponse:
        self.slept_at_claim.append(len(self.clock.slept))
        return await super().claim(request)


@pytest.mark.parametrize("renewed", [True, False])
@pytest.mark.parametrize("refusal", [NotFoundError(404, "gone"), AuthError(401, "expired")])
async def test_claim_refusal_registers_again(
    make_scheduler: MakeScheduler, renewed: bool, refusal: Exception
) -> None:
    clock = FakeClock()
    fake = SleepCountingCoordinator(clock)
    fake.fail_next("claim", refusal)
    hooks = Hooks(renewed=renewed)
    scheduler = make_scheduler(fake, clock=clock, hooks=hooks)

    await run_until(scheduler.claim_loop, lambda: fake.count("claim") >= 2, "claims again")

    assert hooks.renewals == 1
    # Registered again: the next claim goes at once; otherwise after an error backoff.
    assert fake.slept_at_claim[:2] == ([0, 0] if renewed else [0, 1])


@pytest.mark.parametrize(
    ("error", "least_wait"),
    [
        (OverloadedError(429, "busy", retry_after_s=7.0), 7.0),
        (OverloadedError(503, "busy"), 0.5),
        (NetworkError("down"), 0.5),
        (ServerError(500, "boom"), 0.5),
    ],
)
async def test_claim_errors_back_off(
    make_scheduler: MakeScheduler, error: Exception, least_wait: float
) -> None:
    fake = FakeCoordinator()
    fake.fail_next("claim", error)
    clock = FakeClock()
    scheduler = make_scheduler(fake, clock=clock, hooks=Hooks())

    await run_until(scheduler.claim_loop, lambda: fake.count("claim") >= 2, "claims again")

    assert clock.slept[0] >= least_wait


class HoldingCoordinator(FakeCoordinator):
    """A long-poll coordinator: an empty claim comes back after `wait_ms` (on the fake clock)."""

    def __init__(self, clock: FakeClock, hold: bool) -> None:
        super().__init__(features=[m.FEATURE_LONG_POLL])
        self.clock = clock
        self.hold = hold

    async def claim(self, request: m.ClaimRequest) -> m.ClaimResponse:
        answer = await super().claim(request)
        if self.hold and not answer.jobs:
            self.clock.advance(request.wait_ms / 1000)
        return answer


@pytest.mark.parametrize("hold", [True, False])
async def test_long_poll_asks_again_at_once_only_when_held(
    make_scheduler: MakeScheduler, hold: bool
) -> None:
    clock = FakeClock()
    fake = HoldingCoordinator(clock, hold)
    scheduler = make_scheduler(fake, clock=clock, hooks=Hooks(), features=[m.FEATURE_LONG_POLL])

    await run_until(scheduler.claim_loop, lambda: fake.count("claim") >= 3, "claims")

    assert {r.wait_ms for r in fake.requests("claim")} == {20_000}
    # A coordinator that answers at once despite long_poll still gets backoff, not a spin.
    assert (len(clock.slept) == 0) is hold


async def test_claim_loop_waits_while_not_allowed_then_wakes(
    make_scheduler: MakeScheduler,
) -> None:
    fake = FakeCoordinator()
    hooks = Hooks()
    hooks.allowed = False
    scheduler = make_scheduler(fake, clock=ScaledClock(0.001), hooks=hooks)
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.claim_loop(stop))
    fake.add_job("sum", {"a": 1, "b": 2})
    for _ in range(5):
        await asyncio.sleep(0)
    assert fake.count("claim") == 0

    hooks.allowed = True
    scheduler.wake.set()
    await eventually(lambda: len(scheduler.reporting.pending) == 1, "the job ran")
    stop.set()
    await asyncio.wait_for(task, 30)
    assert scheduler.reporting.pending[0].result == {"result": 3}
    assert BotState.PROCESS in hooks.activities and BotState.CLAIM in hooks.activities


async def test_report_loop_with_a_full_outbox_calls_fatal(
    make_scheduler: MakeScheduler,
) -> None:
    fake = FakeCoordinator()
    fake.fail_next("complete", NetworkError("down"))
    hooks = Hooks()
    disk = FailingDisk()
    scheduler = make_scheduler(fake, hooks=hooks, disk=disk)
    disk.append_errno = errno.ENOSPC
    report = m.ReportItem(job_id="job_1", action="complete", result={})
    scheduler.reporting.pending.append(report)
    scheduler.reporting.ready.set()

    await run_until(scheduler.reporting.report_loop, lambda: bool(hooks.fatals), "fatal")
    assert scheduler.reporting.unsaved == [report]
    assert isinstance(hooks.fatals[0], OutboxFullError)


async def test_report_loop_stopped_mid_delivery_keeps_the_group(
    make_scheduler: MakeScheduler,
) -> None:
    fake = FakeCoordinator()
    fake.gates["complete"] = asyncio.Event()  # the delivery hangs
    scheduler = make_scheduler(fake, hooks=Hooks())
    report = m.ReportItem(job_id="job_1", action="complete", result={"r": 1})
    scheduler.reporting.pending.append(report)
    task = asyncio.create_task(scheduler.reporting.report_loop(asyncio.Event()))
    await eventually(lambda: fake.count("complete") == 1, "delivery started")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert scheduler.outbox.pending() == [report]


async def test_report_loop_renews_on_401(make_scheduler: MakeScheduler) -> None:
    fake = FakeCoordinator()
    fake.fail_next("complete", AuthError(401, "expired"))
    hooks = Hooks()
    scheduler = make_scheduler(fake, hooks=hooks)
    scheduler.reporting.pending.append(m.ReportItem(job_id="job_1", action="complete", result={}))

    await run_until(scheduler.reporting.report_loop, lambda: hooks.renewals == 1, "renewed")
    assert len(scheduler.outbox) == 1


async def test_outbox_loop_backs_off_then_delivers(make_scheduler: MakeScheduler) -> None:
    fake = FakeCoordinator()
    job_id = fake.add_job("sum", {"a": 1, "b": 1})
    await fake.claim(m.ClaimRequest(bot_id=fake.bot_id, operations=["sum"]))
    fake.fail_next("complete", NetworkError("down"))
    clock = FakeClock()
    scheduler = make_scheduler(fake, clock=clock, hooks=Hooks())
    scheduler.outbox.append(
        [m.ReportItem(job_id=job_id, attempt=1, action="complete", result={"result": 2})]
    )

    await run_until(
        scheduler.reporting.outbox_loop, lambda: len(scheduler.outbox) == 0, "delivered"
    )
    assert fake.jobs[job_id].result == {"result": 2}
    assert clock.slept[0] == 0.5  # backoff after the failure, not the heartbeat interval


async def test_outbox_loop_that_cannot_rewrite_calls_fatal(
    make_scheduler: MakeScheduler,
) -> None:
    fake = FakeCoordinator()
    hooks = Hooks()
    disk = FailingDisk()
    scheduler = make_scheduler(fake, hooks=hooks, disk=disk)
    scheduler.outbox.append([m.ReportItem(job_id="job_x", action="complete", result={})])
    disk.rewrite_errno = errno.EIO

    await asyncio.wait_for(scheduler.reporting.outbox_loop(asyncio.Event()), 30)
    assert len(hooks.fatals) == 1 and "cannot rewrite" in str(hooks.fatals[0])
    assert len(scheduler.outbox) == 1


async def test_progress_loop_sends_the_latest_and_survives_errors(
    make_scheduler: MakeScheduler, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    registry = load_plugins(Registry(), entry_points=())
    release = threading.Event()

    def blocking(job: Job) -> dict[str, bool]:  # runs in a thread
        job.progress(0.1)
        job.progress(0.6, "most")
        release.wait(30)
        return {}

    registry.register("blocking", blocking)
    fake = FakeCoordinator()
    ids = [fake.add_job("blocking"), fake.add_job("blocking")]
    fake.fail_next("progress", NetworkError("down"))
    scheduler = make_scheduler(
        fake, registry=registry, clock=ScaledClock(0.001), features=[m.FEATURE_PROGRESS]
    )
    stop = asyncio.Event()
    progress = asyncio.create_task(scheduler.progress_loop(stop))
    tick = asyncio.create_task(scheduler.tick())
    try:
        await eventually(
            lambda: all(fake.jobs[i].progress == 0.6 for i in ids), "latest progress of both"
        )
    finally:
        release.set()
        await asyncio.wait_for(tick, 30)
        stop.set()
        await asyncio.wait_for(progress, 30)
    # The first one was lost to the network; a later, newer value got through.
    assert fake.requests("progress")[-1].message == "most"
    assert "not sent" in caplog.text


async def test_progress_without_the_feature_rides_on_heartbeats(
    make_scheduler: MakeScheduler,
) -> None:
    fake = FakeCoordinator()
    scheduler = make_scheduler(fake, clock=ScaledClock(0.001))
    scheduler.running.add(Job("job_1", "sum", {}))
    scheduler.running.note_progress("job_1", 0.3, None)
    scheduler.running.note_progress("job_unknown", 0.3, None)
    await run_until(
        scheduler.progress_loop, lambda: not scheduler.running.progressed.is_set(), "taken"
    )
    assert fake.count("progress") == 0
    assert [r.progress for r in scheduler.running.wire()] == [0.3]
    scheduler.running.remove("job_1")


async def test_wait_jobs_and_abandon(make_scheduler: MakeScheduler) -> None:
    registry = Registry()

    async def forever(job: Job) -> dict[str, Any]:
        await asyncio.Event().wait()
        return {}

    registry.register("forever", forever)
    scheduler = make_scheduler(FakeCoordinator(), registry=registry)
    assert await scheduler.wait_jobs(asyncio.Event()) is True
    scheduler.start(Job("job_1", "forever", {}))
    hard = asyncio.Event()
    hard.set()
    assert await scheduler.wait_jobs(hard) is False
    assert scheduler.cancel("job_nope") is False
    assert await scheduler.abandon_jobs() == 1
    assert len(scheduler.running) == 0 and scheduler.slots.in_use == 0
    assert await scheduler.abandon_jobs() == 0


async def test_a_job_task_that_raises_frees_its_slot_and_reports_nothing(
    make_scheduler: MakeScheduler, caplog: pytest.LogCaptureFixture
) -> None:
    """Handlers' errors become `fail` reports inside the task; should the task itself
    break (here: the bot's own hook), the slot is freed and nothing is reported: the
    job's lease runs out and it runs again, rather than being reported wrongly."""

    class BrokenHooks(StandaloneHooks):
        def job_finished(self, job: Job, outcome: Any) -> None:
            raise RuntimeError("hook broke")

    scheduler = make_scheduler(FakeCoordinator(), hooks=BrokenHooks())
    reports: list[m.ReportItem] = []
    task = scheduler.start(Job("job_1", "sum", {"a": 1, "b": 2}), reports.append)
    with pytest.raises(RuntimeError, match="hook broke"):
        await task
    await eventually(lambda: scheduler.slots.in_use == 0, "the slot freed")
    assert reports == [] and len(scheduler.running) == 0
    assert "job job_1: the bot failed running it" in caplog.text


async def test_keep_without_a_disk_remembers_unsaved(make_scheduler: MakeScheduler) -> None:
    disk = FailingDisk()
    scheduler = make_scheduler(FakeCoordinator(), disk=disk)
    disk.append_errno = errno.EDQUOT
    report = m.ReportItem(job_id="job_1", action="complete", result={})
    scheduler.reporting.pending.append(report)
    scheduler.reporting.keep_pending()
    scheduler.reporting.keep([])
    assert scheduler.reporting.unsaved == [report] and scheduler.reporting.pending == []


def test_progress_after_the_loop_closed_is_dropped() -> None:
    running = RunningJobs(FakeClock())

    async def start() -> None:
        running.add(Job("job_1", "sum", {}))

    asyncio.run(start())
    running.note_progress("job_1", 0.5, None)  # the loop is gone: nothing breaks
    assert running.take_progress()[0][1] == 0.5
