"""Hedged claims: a claim expected to answer at once that is late goes out once more under
the same claim_id; the first answer wins, and a later answer's new jobs are started too,
never a job twice."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import pytest

from bot.errors import NetworkError, OverloadedError, ServerError
from bot.jobs import Registry, load_plugins
from bot.settings import Settings
from bot.state import Job
from bot.testing import FakeCoordinator
from bot.work.hedge import HEDGE_FLOOR_S, MAX_OUT, MAX_SENT, RoundTrips, hedged_call
from botfleet.clock import FakeClock
from botfleet.protocol import messages as m
from tests.unit.bot.conftest import MakeScheduler, RecordingHooks, eventually


class HeldClock(FakeClock):
    """A fake clock whose sleeps end only when the test says time has passed: each
    `timer.set()` ends the sleep on its way (one)."""

    def __init__(self) -> None:
        super().__init__()
        self.timer = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await self.timer.wait()
        self.timer.clear()
        self.advance(seconds)


class Calls:
    """`send` for hedged_call: each call waits for its own answer, set by the test."""

    def __init__(self) -> None:
        self.answers: list[asyncio.Future[str]] = []

    async def send(self) -> str:
        answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.answers.append(answer)
        return await answer


async def _until_sent(calls: Calls, count: int) -> None:
    await eventually(lambda: len(calls.answers) >= count, f"{count} call(s) sent")


async def _until_timers(clock: HeldClock, count: int) -> None:
    await eventually(lambda: len(clock.slept) == count, f"hedge timer {count} running")


# ---------------------------------------------------------------- hedged_call


async def test_an_answer_in_time_is_not_hedged() -> None:
    calls, clock = Calls(), HeldClock()
    hedged = asyncio.ensure_future(hedged_call(calls.send, clock, 0.3))
    await _until_sent(calls, 1)
    calls.answers[0].set_result("first")
    result = await hedged
    assert (result.answer, result.hedged, result.late) == ("first", False, [])
    assert len(calls.answers) == 1 and clock.slept == [0.3]


async def test_a_late_call_is_sent_again_and_the_first_answer_wins() -> None:
    calls, clock = Calls(), HeldClock()
    hedged = asyncio.ensure_future(hedged_call(calls.send, clock, 0.3))
    await _until_sent(calls, 1)
    clock.timer.set()  # 0.3 s pass without an answer
    await _until_sent(calls, 2)
    calls.answers[1].set_result("second")
    result = await hedged
    assert (result.answer, result.hedged, len(result.late)) == ("second", True, 1)
    assert not result.late[0].done()  # the first copy is not cancelled: it may have acted
    calls.answers[0].set_result("first, late")
    assert await result.late[0] == "first, late"


async def test_a_copy_that_fails_waits_for_the_other() -> None:
    calls, clock = Calls(), HeldClock()
    hedged = asyncio.ensure_future(hedged_call(calls.send, clock, 0.3))
    await _until_sent(calls, 1)
    clock.timer.set()
    await _until_sent(calls, 2)
    calls.answers[0].set_exception(NetworkError("reset"))
    await asyncio.sleep(0)
    assert not hedged.done()
    calls.answers[1].set_result("second")
    assert (await hedged).answer == "second"


async def test_when_every_copy_fails_the_first_ones_error_is_raised() -> None:
    calls, clock = Calls(), HeldClock()
    hedged = asyncio.ensure_future(hedged_call(calls.send, clock, 0.3))
    await _until_sent(calls, 1)
    clock.timer.set()
    await _until_sent(calls, 2)
    calls.answers[1].set_exception(ServerError(502, "bad gateway"))
    calls.answers[0].set_exception(NetworkError("reset"))
    with pytest.raises(NetworkError, match="reset"):
        await hedged


async def test_no_hedge_without_a_delay_and_cancelling_cancels_every_copy() -> None:
    calls, clock = Calls(), HeldClock()
    plain = asyncio.ensure_future(hedged_call(calls.send, clock, None))
    await _until_sent(calls, 1)
    clock.timer.set()
    await asyncio.sleep(0)
    assert len(calls.answers) == 1 and clock.slept == []
    plain.cancel()
    with pytest.raises(asyncio.CancelledError):
        await plain

    hedged = asyncio.ensure_future(hedged_call(calls.send, clock, 0.3))
    await _until_sent(calls, 2)
    clock.timer.set()
    await _until_sent(calls, 3)
    hedged.cancel()
    with pytest.raises(asyncio.CancelledError):
        await hedged
    assert all(answer.cancelled() for answer in calls.answers[1:])


# ---------------------------------------------------------------- the claim


class DelaysTheFirstClaim(FakeCoordinator):
    """The first claim is held on its way (until `arrive`); a repeated claim_id gets the
    jobs handed out for it that still run, and nothing new once it handed out any - as
    the coordinator does."""

    def __init__(self, lose_its_answer: bool = False) -> None:
        super().__init__(features=[m.FEATURE_CLAIM_ID])
        self.lose_its_answer = lose_its_answer  # the first copy acts, its answer is lost
        self.arrive = asyncio.Event()
        self.handed: dict[str, list[m.ClaimedJob]] = {}
        self.sent: list[m.ClaimRequest] = []  # every claim, as it left the bot
        self.answered = 0

    async def claim(self, request: m.ClaimRequest) -> m.ClaimResponse:
        assert isinstance(request.claim_id, str)
        self.sent.append(request)
        delayed = len(self.sent) == 1
        if delayed:
            await self.arrive.wait()
        running = [
            job
            for job in self.handed.get(request.claim_id, [])
            if self.jobs[job.id].state == "running"
        ]
        self.answered += 1
        if running or self.handed.get(request.claim_id):
            answer = m.ClaimResponse(jobs=running)
        else:
            answer = await super().claim(request)
            self.handed[request.claim_id] = answer.jobs
        if delayed and self.lose_its_answer:
            raise NetworkError("the answer was lost on its way back")
        return answer


def _registry(started: list[str], release: asyncio.Event) -> Registry:
    async def slow(job: Job) -> dict[str, bool]:
        started.append(job.id)
        await release.wait()
        return {}

    registry = load_plugins(Registry(), entry_points=())
    registry.register("slow", slow)
    return registry


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(state_dir=tmp_path, claim_hedge_ms=300, **values)  # type: ignore[arg-type]


async def test_a_late_claim_is_hedged_and_its_late_answer_starts_nothing_twice(
    make_scheduler: MakeScheduler, tmp_path: Path
) -> None:
    fake, clock = DelaysTheFirstClaim(), HeldClock()
    ids = [fake.add_job("slow"), fake.add_job("slow")]
    started: list[str] = []
    release = asyncio.Event()
    scheduler = make_scheduler(
        fake,
        clock=clock,
        settings=_settings(tmp_path),
        features=[m.FEATURE_CLAIM_ID],
        hooks=RecordingHooks(),
        registry=_registry(started, release),
    )
    claim = asyncio.ensure_future(scheduler.claim(2))
    await eventually(lambda: clock.slept == [0.3], "the hedge's timer running")
    clock.timer.set()

    tasks = await claim
    first, hedge = fake.sent
    assert first.claim_id == hedge.claim_id and scheduler.claims.hedged == 1

    fake.arrive.set()  # the first copy reaches the coordinator while the jobs run
    await eventually(lambda: fake.answered == 2, "the late copy answered")
    await eventually(lambda: not scheduler.claims.late, "the late answer looked at")
    release.set()
    await asyncio.gather(*tasks)
    assert sorted(started) == sorted(ids)


@pytest.mark.parametrize("lose_its_answer", [False, True])
async def test_a_late_copy_after_the_jobs_ended_gets_nothing_new(
    make_scheduler: MakeScheduler, tmp_path: Path, lose_its_answer: bool
) -> None:
    """The first copy came after the hedge's jobs had ended: its claim_id handed out
    jobs already, so the coordinator hands it none (a job given to an answer nobody
    waits for would hold a slot until the lost-claim rule freed it); the new job waits
    for the next claim. Since it can bring nothing new, a late copy whose answer was
    lost is not asked again."""
    fake, clock = DelaysTheFirstClaim(lose_its_answer), HeldClock()
    first_jobs = [fake.add_job("slow")]
    started: list[str] = []
    release = asyncio.Event()
    scheduler = make_scheduler(
        fake,
        clock=clock,
        settings=_settings(tmp_path),
        features=[m.FEATURE_CLAIM_ID],
        hooks=RecordingHooks(),
        registry=_registry(started, release),
    )
    claim = asyncio.ensure_future(scheduler.claim(1))
    await eventually(lambda: clock.slept == [0.3], "the hedge's timer running")
    clock.timer.set()
    release.set()
    await asyncio.gather(*await claim)
    for job_id in first_jobs:
        fake.jobs[job_id].state = "succeeded"  # reported meanwhile
    later = fake.add_job("slow")
    timers = len(clock.slept)

    fake.arrive.set()

    await eventually(lambda: fake.answered == 2, "the late copy answered")
    await asyncio.sleep(0)
    assert started == first_jobs
    assert fake.jobs[later].state == "queued"
    assert scheduler.claims.late.repeated == 0 and len(clock.slept) == timers
    assert len({request.claim_id for request in fake.sent}) == 1


@pytest.mark.parametrize("lose_its_answer", [False, True])
async def test_a_late_copy_of_a_claim_answered_with_no_jobs_has_its_jobs_started(
    make_scheduler: MakeScheduler, tmp_path: Path, lose_its_answer: bool
) -> None:
    """The hedge came back empty; a job submitted meanwhile is handed to the first copy
    when it reaches the coordinator at last. The bot starts it; when that copy's answer
    is lost, it asks again under the same claim_id and gets the job back."""
    fake, clock = DelaysTheFirstClaim(lose_its_answer), HeldClock()
    started: list[str] = []
    release = asyncio.Event()
    scheduler = make_scheduler(
        fake,
        clock=clock,
        settings=_settings(tmp_path),
        features=[m.FEATURE_CLAIM_ID],
        hooks=RecordingHooks(),
        registry=_registry(started, release),
    )
    claim = asyncio.ensure_future(scheduler.claim(1))
    await eventually(lambda: clock.slept == [0.3], "the hedge's timer running")
    clock.timer.set()
    assert await claim == []
    later = fake.add_job("slow")
    timers = len(clock.slept)

    fake.arrive.set()

    if lose_its_answer:  # asked again after a short backoff
        await _until_timers(clock, timers + 1)
        assert clock.slept[-1] <= 2.0
        clock.timer.set()
    await eventually(lambda: started == [later], "the late copy's job started")
    assert scheduler.claims.late.repeated == (1 if lose_its_answer else 0)
    assert len({request.claim_id for request in fake.sent}) == 1
    release.set()


@pytest.mark.parametrize(
    ("features", "why"),
    [
        ([m.FEATURE_CLAIM_ID, m.FEATURE_LONG_POLL], "a long-poll with no work seen waits"),
        ([], "without claim_id a copy could take more jobs"),
    ],
)
async def test_claims_that_are_not_hedged(
    make_scheduler: MakeScheduler, tmp_path: Path, features: list[str], why: str
) -> None:
    fake, clock = FakeCoordinator(features=features), HeldClock()
    scheduler = make_scheduler(
        fake,
        clock=clock,
        settings=_settings(tmp_path),
        features=features,
        hooks=RecordingHooks(),
    )
    await scheduler.claim(1, wait_ms=20_000)
    assert clock.slept == [], why
    assert scheduler.claims.hedged == 0


def test_the_hedge_follows_the_round_trips_between_a_floor_and_the_ceiling() -> None:
    trips = RoundTrips()
    assert trips.hedge_after_s(0.3) == 0.3  # nothing known yet
    for _ in range(20):
        trips.add(HEDGE_FLOOR_S / 4)
    assert trips.hedge_after_s(0.3) == HEDGE_FLOOR_S  # twice a quarter is below the floor
    for _ in range(20):
        trips.add(0.04)
    assert trips.hedge_after_s(0.3) == pytest.approx(0.08)
    trips.add(1.5)  # one slow answer among 41 moves no percentile that matters
    assert trips.hedge_after_s(0.3) == pytest.approx(0.08)
    for _ in range(64):
        trips.add(0.5)  # a slow link: hedge no later than the ceiling
    assert trips.hedge_after_s(0.3) == 0.3


async def test_a_copy_that_fails_while_the_other_is_late_is_replaced_when_allowed() -> None:
    """A copy that failed fast is no longer on its way: it is replaced at once, again and
    again while the first copy is late (a lossy link must not use the copies up while a
    delayed one holds the caller), up to MAX_SENT copies in all."""
    calls, clock = Calls(), HeldClock()
    hedged = asyncio.ensure_future(
        hedged_call(calls.send, clock, 0.3, retry=lambda error: isinstance(error, NetworkError))
    )
    await _until_sent(calls, 1)
    clock.timer.set()
    await _until_sent(calls, 2)
    for sent in range(2, MAX_SENT):
        calls.answers[sent - 1].set_exception(NetworkError(f"copy {sent} was lost"))
        await _until_sent(calls, sent + 1)  # replaced at once: the first copy is still late
    calls.answers[MAX_SENT - 1].set_exception(NetworkError("lost again"))
    await asyncio.sleep(0)
    assert len(calls.answers) == MAX_SENT  # no more: now it waits for the late one
    calls.answers[0].set_result("first, at last")
    assert (await hedged).answer == "first, at last"


async def test_a_failed_copy_is_not_replaced_when_the_retry_is_refused() -> None:
    calls, clock = Calls(), HeldClock()
    hedged = asyncio.ensure_future(hedged_call(calls.send, clock, 0.3, retry=lambda error: False))
    await _until_sent(calls, 1)
    clock.timer.set()
    await _until_sent(calls, 2)
    calls.answers[1].set_exception(OverloadedError(503, "shedding load"))
    for _ in range(5):  # a few loop turns: time for a replacement, were it allowed
        await asyncio.sleep(0)
    assert len(calls.answers) == 2  # only the next hedge, after its delay
    clock.timer.set()
    await _until_sent(calls, 3)
    calls.answers[0].set_result("first")
    assert (await hedged).answer == "first"


async def test_while_every_copy_is_late_another_goes_out_each_delay_up_to_the_most() -> None:
    calls, clock = Calls(), HeldClock()
    hedged = asyncio.ensure_future(hedged_call(calls.send, clock, 0.3))
    for sent in range(2, MAX_OUT + 1):
        await _until_sent(calls, sent - 1)
        await _until_timers(clock, sent - 1)
        clock.timer.set()
        await _until_sent(calls, sent)
    await asyncio.sleep(0)
    assert len(calls.answers) == MAX_OUT
    calls.answers[1].set_result("second")
    result = await hedged
    assert result.answer == "second" and len(result.late) == MAX_OUT - 1


async def test_a_copy_that_failed_as_another_answered_has_its_error_read() -> None:
    """No "exception was never retrieved" for a copy that failed in the same turn as the
    one that won."""
    seen: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    try:
        calls, clock = Calls(), HeldClock()
        hedged = asyncio.ensure_future(hedged_call(calls.send, clock, 0.3))
        await _until_sent(calls, 1)
        clock.timer.set()
        await _until_sent(calls, 2)
        calls.answers[1].set_exception(NetworkError("reset"))
        calls.answers[0].set_result("first")
        assert (await hedged).answer == "first"
        del hedged, calls
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert seen == []
