"""The report queue's loops: deliveries in groups under a deadline, the outbox retried with
backoff, what cannot be kept reported as fatal."""

from __future__ import annotations

import asyncio
import errno
from typing import Any

import pytest

from bot.agent.watchdog import Watchdog
from bot.errors import (
    AuthError,
    NetworkError,
    OutboxFullError,
    OverloadedError,
)
from bot.testing import FailingDisk, FakeCoordinator, ScaledClock
from botfleet.clock import FakeClock
from botfleet.protocol import messages as m
from tests.unit.bot.conftest import MakeScheduler, RecordingHooks, eventually, run_until


async def test_report_loop_with_a_full_outbox_calls_fatal(
    make_scheduler: MakeScheduler,
) -> None:
    fake = FakeCoordinator()
    fake.fail_next("complete", NetworkError("down"))
    hooks = RecordingHooks()
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
    scheduler = make_scheduler(fake, hooks=RecordingHooks())
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
    hooks = RecordingHooks()
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
    scheduler = make_scheduler(fake, clock=clock, hooks=RecordingHooks())
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
    hooks = RecordingHooks()
    disk = FailingDisk()
    scheduler = make_scheduler(fake, hooks=hooks, disk=disk)
    scheduler.outbox.append([m.ReportItem(job_id="job_x", action="complete", result={})])
    disk.rewrite_errno = errno.EIO

    await asyncio.wait_for(scheduler.reporting.outbox_loop(asyncio.Event()), 30)
    assert len(hooks.fatals) == 1 and "cannot rewrite" in str(hooks.fatals[0])
    assert len(scheduler.outbox) == 1


async def test_keep_without_a_disk_remembers_unsaved(make_scheduler: MakeScheduler) -> None:
    disk = FailingDisk()
    scheduler = make_scheduler(FakeCoordinator(), disk=disk)
    disk.append_errno = errno.EDQUOT
    report = m.ReportItem(job_id="job_1", action="complete", result={})
    scheduler.reporting.pending.append(report)
    scheduler.reporting.keep_pending()
    scheduler.reporting.keep([])
    assert scheduler.reporting.unsaved == [report] and scheduler.reporting.pending == []


async def test_with_the_circuit_open_reports_go_straight_to_the_outbox(
    make_scheduler: MakeScheduler,
) -> None:
    fake = FakeCoordinator()
    hooks = RecordingHooks(renewed=False)
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
    scheduler = make_scheduler(fake, clock=clock, hooks=RecordingHooks(renewed=False))
    scheduler.outbox.append([m.ReportItem(job_id="job_x", action="complete", result={})])

    await run_until(scheduler.reporting.outbox_loop, lambda: fake.count("complete") >= 2, "retried")
    assert clock.slept[0] >= 9.0


async def test_a_delivery_past_its_deadline_is_kept(make_scheduler: MakeScheduler) -> None:
    fake = FakeCoordinator()
    fake.gates["complete"] = asyncio.Event()  # never opens
    clock = ScaledClock(0.001)
    watchdog = Watchdog(clock, tick_s=0.5)
    scheduler = make_scheduler(
        fake, clock=clock, hooks=RecordingHooks(renewed=False), watchdog=watchdog
    )
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
    hooks = RecordingHooks(renewed=False)
    hooks.up = False
    scheduler = make_scheduler(FakeCoordinator(), hooks=hooks, disk=disk)
    disk.append_errno = errno.EIO
    report = m.ReportItem(job_id="job_1", action="complete", result={})
    scheduler.reporting.pending.append(report)

    await run_until(scheduler.reporting.report_loop, lambda: bool(hooks.fatals), "fatal")
    assert scheduler.reporting.unsaved == [report]


async def test_network_errors_while_reporting_leave_reports_kept(
    make_scheduler: MakeScheduler,
) -> None:
    fake = FakeCoordinator()
    fake.fail_next("complete", NetworkError("reset"))
    hooks = RecordingHooks(renewed=False)
    scheduler = make_scheduler(fake, hooks=hooks)
    scheduler.reporting.pending.append(m.ReportItem(job_id="job_1", action="complete", result={}))
    await run_until(scheduler.reporting.report_loop, lambda: len(scheduler.outbox) == 1, "kept")
    assert [item.job_id for item in scheduler.outbox.pending()] == ["job_1"]
    assert scheduler.reporter.counts.kept == 1 and scheduler.reporter.counts.accepted == 0
    assert hooks.fatals == [] and scheduler.reporting.pending == []


async def test_a_delivery_failing_while_the_outbox_flushes_is_retried_without_a_heartbeats_wait(
    make_scheduler: MakeScheduler,
) -> None:
    fake = FakeCoordinator()
    first, second = fake.add_job("sum", {}), fake.add_job("sum", {})
    await fake.claim(m.ClaimRequest(bot_id=fake.bot_id, operations=["sum"], limit=2))
    fake.gates["complete"] = gate = asyncio.Event()  # the outbox's flush hangs
    clock = FakeClock()
    scheduler = make_scheduler(fake, clock=clock, hooks=RecordingHooks())
    reporting = scheduler.reporting
    scheduler.outbox.append([m.ReportItem(job_id=first, attempt=1, action="complete", result={})])
    task = asyncio.create_task(reporting.outbox_loop(asyncio.Event()))
    try:
        await eventually(lambda: fake.count("complete") == 1, "the outbox's flush started")
        # Meanwhile another delivery fails: its report goes to the outbox, as the report
        # loop does, and the outbox loop is told to retry it soon.
        scheduler.outbox.append(
            [m.ReportItem(job_id=second, attempt=1, action="complete", result={})]
        )
        reporting.retry_soon(NetworkError("answer lost"))
        fake.gates["complete"] = retried = asyncio.Event()  # holds the retry when it comes
        gate.set()
        await eventually(lambda: fake.count("complete") == 2, "the failed report retried")
        assert reporting.session.heartbeat_interval_s not in clock.slept
        retried.set()
        await eventually(lambda: fake.jobs[second].state == "succeeded", "delivered")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
