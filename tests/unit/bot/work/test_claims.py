"""The claim loop: claims for the free slots, backs off on errors and empty answers, waits for
room or a hint of new work, gives up a claim on its way."""

from __future__ import annotations

import asyncio

import pytest

from bot.errors import (
    AuthError,
    NetworkError,
    NotFoundError,
    OverloadedError,
    ServerError,
)
from bot.state import BotState, Job
from bot.testing import FakeCoordinator, ScaledClock
from botfleet.clock import FakeClock
from botfleet.protocol import messages as m
from tests.unit.bot.conftest import MakeScheduler, RecordingHooks, eventually, run_until


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
    hooks = RecordingHooks(renewed=renewed)
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
    scheduler = make_scheduler(fake, clock=clock, hooks=RecordingHooks())

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
    scheduler = make_scheduler(
        fake, clock=clock, hooks=RecordingHooks(), features=[m.FEATURE_LONG_POLL]
    )

    await run_until(scheduler.claim_loop, lambda: fake.count("claim") >= 3, "claims")

    assert {r.wait_ms for r in fake.requests("claim")} == {20_000}
    # A coordinator that answers at once despite long_poll still gets backoff, not a spin.
    assert (len(clock.slept) == 0) is hold


async def test_claim_loop_waits_while_not_allowed_then_wakes(
    make_scheduler: MakeScheduler,
) -> None:
    fake = FakeCoordinator()
    hooks = RecordingHooks()
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


async def test_a_failed_claim_backs_off_through_the_hooks(make_scheduler: MakeScheduler) -> None:
    fake = FakeCoordinator()
    fake.fail_next("claim", OverloadedError(503, "busy", retry_after_s=4.0))
    hooks = RecordingHooks(renewed=False)
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
