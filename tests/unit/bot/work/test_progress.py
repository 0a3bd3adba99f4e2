"""The progress loop: the latest value of each job, at most once per interval, best effort."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from bot.errors import (
    NetworkError,
)
from bot.jobs import Registry, load_plugins
from bot.state import Job
from bot.testing import FakeCoordinator, ScaledClock
from botfleet.protocol import messages as m
from tests.unit.bot.conftest import MakeScheduler, eventually, run_until


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
