"""The job runner: a slot per job, reports of cancelled and timed-out jobs, crashes told, jobs
and hung handlers' threads abandoned."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from bot.jobs import Registry, load_plugins
from bot.state import Job
from bot.testing import FakeCoordinator, ScaledClock
from bot.work.hooks import StandaloneHooks
from bot.work.threads import ABANDONED_LIMIT
from botfleet.protocol import messages as m
from tests.unit.bot.conftest import GENEROUS_S, MakeScheduler, RecordingHooks, eventually


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


async def test_a_job_cancelled_before_it_began_still_reports(make_scheduler: MakeScheduler) -> None:
    hooks = RecordingHooks(renewed=False)
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
    hooks = RecordingHooks(renewed=False)
    scheduler = make_scheduler(FakeCoordinator(), registry=registry, hooks=hooks)
    await scheduler.start(Job("job_1", "broken", {}))
    await scheduler.start(Job("job_2", "sum", {"a": 1}))  # bad input: the job's fault
    assert [o.crash for o in hooks.finished] == ["ZeroDivisionError: oops", None]


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
        FakeCoordinator(),
        registry=registry,
        clock=ScaledClock(0.001),
        hooks=RecordingHooks(renewed=False),
    )
    task = scheduler.start(Job("job_1", "stubborn", {}))
    await asyncio.sleep(0)
    assert await scheduler.abandon_jobs(wait_s=1.0) == 1
    assert not task.done()
    release.set()
    await asyncio.wait_for(task, 30)


class Hung:
    """A plain handler that blocks on an event it is given only at the end of the test."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.threads: list[threading.Thread] = []
        self.started = threading.Semaphore(0)

    def __call__(self, job: Job) -> dict[str, Any]:
        self.threads.append(threading.current_thread())
        self.started.release()
        self.release.wait(GENEROUS_S)
        return {}


@pytest.fixture
def hung() -> Iterator[Hung]:
    handler = Hung()
    yield handler
    handler.release.set()  # the abandoned threads end with the test


def _registry(**handlers: Any) -> Registry:
    registry = load_plugins(Registry(), entry_points=())
    for name, handler in handlers.items():
        registry.register(name, handler)
    return registry


async def test_a_hung_plain_handler_past_its_timeout_gives_its_slot_back(
    make_scheduler: MakeScheduler, hung: Hung, caplog: pytest.LogCaptureFixture
) -> None:
    hooks = RecordingHooks(renewed=False)
    scheduler = make_scheduler(FakeCoordinator(), registry=_registry(hung=hung), hooks=hooks)
    reports: list[m.ReportItem] = []
    # The deadline is asyncio's own (the job's), so the test waits on the job, not a clock.
    await scheduler.start(Job("job_1", "hung", {}, timeout_s=0.001), reports.append)
    (report,) = reports
    assert (report.action, report.retryable) == ("fail", True)
    assert (report.error or "").startswith("timeout: ")
    assert scheduler.slots.in_use == 0 and len(scheduler.running) == 0
    assert (scheduler.threads.abandoned, scheduler.threads.abandoned_total) == (1, 1)
    assert "job job_1 (hung): its handler ignored the cancellation" in caplog.text
    assert hooks.exhausted == []

    # The next plain job runs in a thread of its own: the abandoned one is never reused.
    seen: list[threading.Thread] = []

    def quick(job: Job) -> dict[str, Any]:
        seen.append(threading.current_thread())
        return {}

    scheduler.runner.registry.register("quick", quick)
    await scheduler.start(Job("job_2", "quick", {}), reports.append)
    assert reports[-1].action == "complete" and seen[0] is not hung.threads[0]
    assert scheduler.slots.in_use == 0


async def test_an_operator_cancel_of_a_hung_plain_handler_abandons_its_thread(
    make_scheduler: MakeScheduler, hung: Hung
) -> None:
    scheduler = make_scheduler(
        FakeCoordinator(), registry=_registry(hung=hung), hooks=RecordingHooks(renewed=False)
    )
    reports: list[m.ReportItem] = []
    task = scheduler.start(Job("job_1", "hung", {}), reports.append)
    await asyncio.to_thread(hung.started.acquire)
    assert scheduler.cancel("job_1", "cancelled") is True
    await asyncio.wait_for(task, GENEROUS_S)
    (report,) = reports
    assert (report.action, report.error, report.retryable) == ("fail", "cancelled", False)
    assert scheduler.slots.in_use == 0 and scheduler.threads.abandoned == 1


async def test_past_the_limit_of_abandoned_threads_the_bot_is_told(
    make_scheduler: MakeScheduler, hung: Hung
) -> None:
    hooks = RecordingHooks(renewed=False)
    scheduler = make_scheduler(FakeCoordinator(), registry=_registry(hung=hung), hooks=hooks)
    for n in range(ABANDONED_LIMIT):
        await scheduler.start(Job(f"job_{n}", "hung", {}, timeout_s=0.001))
    assert scheduler.threads.abandoned == ABANDONED_LIMIT and hooks.exhausted == []
    await scheduler.start(Job("job_last", "hung", {}, timeout_s=0.001))
    assert hooks.exhausted == [ABANDONED_LIMIT + 1] and scheduler.slots.in_use == 0


async def test_an_async_handler_past_its_timeout_is_cancelled_and_failed(
    make_scheduler: MakeScheduler,
) -> None:
    cancelled = asyncio.Event()

    async def forever(job: Job) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    scheduler = make_scheduler(
        FakeCoordinator(), registry=_registry(forever=forever), hooks=RecordingHooks(False)
    )
    reports: list[m.ReportItem] = []
    await scheduler.start(Job("job_1", "forever", {}, timeout_s=0.001), reports.append)
    (report,) = reports
    assert cancelled.is_set() and (report.action, report.retryable) == ("fail", True)
    assert (report.error or "").startswith("timeout: ")
    assert scheduler.slots.in_use == 0 and scheduler.threads.abandoned_total == 0
