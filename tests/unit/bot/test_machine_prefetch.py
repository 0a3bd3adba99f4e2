"""A whole bot with prefetch, against the FakeCoordinator: a drain gives every held job
back before it says goodbye, and the heartbeat lists held jobs apart from running ones."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.agent.lifecycle import WORK_STATES
from bot.errors import NotFoundError
from bot.jobs import Registry
from bot.machine import EXIT_OK
from bot.state import Job
from bot.testing import FakeCoordinator
from botfleet.protocol import messages as m

from .conftest import RunningBot, StartBot, eventually

FEATURES = [
    m.FEATURE_PREFETCH,
    m.FEATURE_DEREGISTER,
    m.FEATURE_BATCH_REPORT,
    m.FEATURE_LONG_POLL,
]


async def held_behind_one_running(
    start_bot: StartBot, jobs: int, gate: asyncio.Event
) -> tuple[FakeCoordinator, list[str], RunningBot]:
    """A bot of one slot running the first of `jobs` jobs (each waits for `gate`) and
    holding the rest, for an hour; the fake, the jobs' ids and the running bot."""

    async def gated(job: Job) -> dict[str, Any]:
        await gate.wait()
        return {}

    registry = Registry()
    registry.register("gated", gated)
    fake = FakeCoordinator(features=FEATURES)
    ids = [fake.add_job("gated") for _ in range(jobs)]
    running = start_bot(
        fake,
        bot_options={"registry": registry},
        max_concurrency=1,
        prefetch=jobs - 1,
        prefetch_hold_ms=3_600_000,
        heartbeat_interval_s=1.0,
    )
    await running.bot.lifecycle.wait_for(WORK_STATES)
    scheduler = running.bot.scheduler
    assert scheduler is not None
    await eventually(lambda: scheduler.held.ids() == ids[1:], f"{jobs - 1} jobs held")
    return fake, ids, running


async def test_a_drain_gives_held_jobs_back_before_the_goodbye(start_bot: StartBot) -> None:
    gate = asyncio.Event()
    fake, ids, running = await held_behind_one_running(start_bot, 4, gate)
    # Heartbeats list them as held, apart from the one running.
    await eventually(
        lambda: any(beat.held == ids[1:] for beat in fake.requests("heartbeat")), "held listed"
    )
    beat = next(beat for beat in fake.requests("heartbeat") if beat.held == ids[1:])
    assert [job.job_id for job in beat.running] == ids[:1]

    running.bot.request_stop("test")
    await eventually(lambda: fake.count("release") == 1, "the held jobs given back")
    gate.set()  # the running job may finish within the drain's grace
    assert await running.exit_code() == EXIT_OK
    (release,) = fake.requests("release")
    assert [item.job_id for item in release.jobs] == ids[1:]
    names = [name for name, _ in fake.calls]
    assert names.index("release") < names.index("deregister")
    assert fake.queue == ids[1:]  # back in line, uncharged
    assert fake.jobs[ids[0]].state == "succeeded"


async def test_registering_again_gives_held_jobs_back(start_bot: StartBot) -> None:
    """A 404 means the coordinator gave the bot up and queued its jobs again: held jobs
    may be another bot's by now, so they are all given back (those no longer its own
    answer `conflict`) rather than started."""
    gate = asyncio.Event()
    fake, ids, running = await held_behind_one_running(start_bot, 3, gate)
    fake.fail_next("heartbeat", NotFoundError(404, "bot_not_found"))
    await eventually(lambda: fake.count("release") == 1, "the held jobs given back")
    assert [item.job_id for item in fake.requests("release")[0].jobs] == ids[1:]
    assert fake.count("register") == 2
    gate.set()
    assert await running.stop() == EXIT_OK
