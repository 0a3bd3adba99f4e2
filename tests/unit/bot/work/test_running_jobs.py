"""The jobs running now: progress from a handler thread after the loop closed is dropped."""

from __future__ import annotations

import asyncio

from bot.state import Job
from bot.work.running_jobs import RunningJobs
from botfleet.clock import FakeClock


def test_progress_after_the_loop_closed_is_dropped() -> None:
    running = RunningJobs(FakeClock())

    async def start() -> None:
        running.add(Job("job_1", "sum", {}))

    asyncio.run(start())
    running.note_progress("job_1", 0.5, None)  # the loop is gone: nothing breaks
    assert running.take_progress()[0][1] == 0.5
