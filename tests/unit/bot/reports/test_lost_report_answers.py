"""A report delivery whose answer was lost is sent again from the outbox at once (retry
budget permitting), and after the outbox backoff if that fails too - never a heartbeat
interval later: until the coordinator hears of them, it counts those jobs against the
bot's max_concurrency."""

from __future__ import annotations

import asyncio

from bot.errors import NetworkError
from bot.testing import FakeCoordinator
from botfleet.clock import FakeClock
from botfleet.protocol import messages as m
from tests.unit.bot.conftest import MakeScheduler, RecordingHooks, eventually


class IntervalsNeverPass(FakeClock):
    """Short waits pass at once; a heartbeat interval (or longer) never ends."""

    def __init__(self, longest_s: float) -> None:
        super().__init__()
        self.longest_s = longest_s

    async def sleep(self, seconds: float) -> None:
        if seconds >= self.longest_s:
            await asyncio.Event().wait()
        await super().sleep(seconds)


async def test_a_lost_report_answer_is_retried_at_once_then_after_the_backoff(
    make_scheduler: MakeScheduler,
) -> None:
    fake = FakeCoordinator()
    job_id = fake.add_job("sum", {"a": 1, "b": 1})
    await fake.claim(m.ClaimRequest(bot_id=fake.bot_id, operations=["sum"]))
    fake.fail_next("complete", NetworkError("the answer was lost"), NetworkError("again"))
    scheduler = make_scheduler(fake, hooks=RecordingHooks())
    reporting = scheduler.reporting
    clock = IntervalsNeverPass(reporting.session.heartbeat_interval_s)
    reporting.clock = clock
    stop = asyncio.Event()
    outbox_loop = asyncio.create_task(reporting.outbox_loop(stop))
    report_loop = asyncio.create_task(reporting.report_loop(stop))
    try:
        reporting.pending.append(
            m.ReportItem(job_id=job_id, attempt=1, action="complete", result={"result": 2})
        )
        reporting.ready.set()
        await eventually(lambda: fake.jobs[job_id].state == "succeeded", "delivered again")
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(outbox_loop, report_loop), 30)
    assert fake.count("complete") == 3
    assert clock.slept == [0.5]  # at once after the first failure; the backoff after the second
