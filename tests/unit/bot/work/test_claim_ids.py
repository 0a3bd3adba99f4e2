"""`claim_id`: a claim whose answer was not read is retried under the same id, and the next
claim after an answer is a new one; no id goes to a coordinator that does not offer it."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import msgspec
import pytest

from bot.errors import CoordinatorError, NetworkError, OverloadedError, ServerError
from bot.link.backoff import RETRY_BUDGET_CAP
from bot.machine import EXIT_OK
from bot.settings import Settings
from bot.testing import FakeCoordinator
from bot.work.claims import MAX_AT_ONCE
from botfleet.clock import FakeClock
from botfleet.protocol import messages as m
from tests.unit.bot.conftest import MakeScheduler, RecordingHooks, StartBot, eventually, run_until


def _ids(fake: FakeCoordinator) -> list[object]:
    return [request.claim_id for request in fake.requests("claim")]


async def test_a_failed_claim_is_retried_with_its_id_and_an_answered_one_is_not(
    make_scheduler: MakeScheduler,
) -> None:
    fake = FakeCoordinator(features=[m.FEATURE_CLAIM_ID])
    fake.add_job("sum", {"a": 1, "b": 2})
    fake.fail_next(
        "claim",
        NetworkError("connection reset"),
        ServerError(502, "bad gateway"),
        OverloadedError(429, "slow down", retry_after_s=1.0),
    )
    scheduler = make_scheduler(fake, features=[m.FEATURE_CLAIM_ID])
    for _ in range(3):
        with pytest.raises(CoordinatorError):
            await scheduler.claim(1)
    await asyncio.gather(*await scheduler.claim(1))
    await scheduler.claim(1)
    await scheduler.claim(1)
    ids = _ids(fake)
    assert all(isinstance(claim_id, str) and claim_id for claim_id in ids)
    assert ids[0] == ids[1] == ids[2] == ids[3]
    assert len({ids[3], ids[4], ids[5]}) == 3


async def test_no_claim_id_without_the_feature(make_scheduler: MakeScheduler) -> None:
    fake = FakeCoordinator()
    scheduler = make_scheduler(fake)
    await scheduler.claim(1)
    assert _ids(fake) == [msgspec.UNSET]
    assert b"claim_id" not in msgspec.json.encode(fake.requests("claim")[0])


class LosesTheFirstAnswer(FakeCoordinator):
    """Hands jobs out and drops the answer once; a repeated `claim_id` gets them back."""

    def __init__(self) -> None:
        super().__init__(features=[m.FEATURE_CLAIM_ID])
        self.handed: dict[str, m.ClaimResponse] = {}
        self.lost = 0

    async def claim(self, request: m.ClaimRequest) -> m.ClaimResponse:
        assert isinstance(request.claim_id, str)
        again = self.handed.get(request.claim_id)
        if again is not None:
            self.calls.append(("claim", request))
            return again
        answer = await super().claim(request)
        self.handed[request.claim_id] = answer
        if answer.jobs and not self.lost:
            self.lost += 1
            raise NetworkError("the answer was lost on its way back")
        return answer


async def test_a_lost_claim_answer_is_recovered_by_the_retry(start_bot: StartBot) -> None:
    fake = LosesTheFirstAnswer()
    for i in range(2):
        fake.add_job("sum", {"a": i, "b": 1})
    running = start_bot(fake)

    await fake.wait_finished(2)

    assert fake.lost == 1
    assert [job.result for job in fake.finished()] == [{"result": 1}, {"result": 2}]
    first, retry = _ids(fake)[:2]
    assert first == retry
    assert await running.stop() == EXIT_OK


class SleepsAtClaim(FakeCoordinator):
    """Notes how many sleeps the bot's clock had done at each claim."""

    def __init__(self, clock: FakeClock, features: list[str]) -> None:
        super().__init__(features=features)
        self.clock = clock
        self.slept_at_claim: list[int] = []

    async def claim(self, request: m.ClaimRequest) -> m.ClaimResponse:
        self.slept_at_claim.append(len(self.clock.slept))
        return await super().claim(request)


@pytest.mark.parametrize("claim_ids", [True, False])
async def test_a_lost_answer_is_asked_again_at_once_then_backs_off(
    make_scheduler: MakeScheduler, claim_ids: bool
) -> None:
    """The first MAX_AT_ONCE failures in a row are asked again at once (under the same
    claim_id), the next backs off; without claim_id every failure backs off."""
    clock = FakeClock()
    features = [m.FEATURE_CLAIM_ID] if claim_ids else []
    fake = SleepsAtClaim(clock, features)
    errors = [NetworkError("reset"), ServerError(502, "bad gateway")] * MAX_AT_ONCE
    fake.fail_next("claim", *errors[: MAX_AT_ONCE + 1])
    scheduler = make_scheduler(fake, clock=clock, hooks=RecordingHooks(), features=features)

    claims = MAX_AT_ONCE + 2
    await run_until(scheduler.claim_loop, lambda: fake.count("claim") >= claims, "claims")

    at_once = [0] * (MAX_AT_ONCE + 1) + [1]
    assert fake.slept_at_claim[:claims] == (at_once if claim_ids else list(range(claims)))


class LosesThreeInFour(SleepsAtClaim):
    """Three claims in every four fail: streaks shorter than MAX_AT_ONCE, losses far
    above the retry budget's ratio."""

    async def claim(self, request: m.ClaimRequest) -> m.ClaimResponse:
        if len(self.slept_at_claim) % 4 != 3:
            self.slept_at_claim.append(len(self.clock.slept))
            self.calls.append(("claim", request))
            raise NetworkError("lost")
        return await super().claim(request)


async def test_the_retry_budget_bounds_the_claims_asked_again_at_once(
    make_scheduler: MakeScheduler,
) -> None:
    clock = FakeClock()
    fake = LosesThreeInFour(clock, [m.FEATURE_CLAIM_ID])
    for i in range(40):
        fake.add_job("sum", {"a": i, "b": 1})
    scheduler = make_scheduler(
        fake, clock=clock, hooks=RecordingHooks(), features=[m.FEATURE_CLAIM_ID]
    )

    await run_until(scheduler.claim_loop, lambda: fake.count("claim") >= 40, "claims")

    waits = [after - before for before, after in itertools.pairwise(fake.slept_at_claim[:40])]
    after_failure = [wait for claim, wait in enumerate(waits) if claim % 4 != 3]
    assert MAX_AT_ONCE > 3  # no streak is long enough to back off on its own
    # The budget's retries kept, half a retry earned per answer (9 answers) at most.
    at_most = int(RETRY_BUDGET_CAP + 0.5 * 9)
    assert at_most < len(after_failure)
    assert after_failure.count(0) <= at_most
    assert after_failure.count(1) >= len(after_failure) - at_most


async def test_a_shed_claim_that_names_a_time_waits_for_it(make_scheduler: MakeScheduler) -> None:
    clock = FakeClock()
    fake = SleepsAtClaim(clock, [m.FEATURE_CLAIM_ID])
    fake.fail_next("claim", OverloadedError(503, "busy", retry_after_s=2.0))
    scheduler = make_scheduler(
        fake, clock=clock, hooks=RecordingHooks(), features=[m.FEATURE_CLAIM_ID]
    )

    await run_until(scheduler.claim_loop, lambda: fake.count("claim") >= 2, "claims")

    assert fake.slept_at_claim[:2] == [0, 1] and clock.slept[0] >= 2.0


async def test_a_repeated_claim_id_does_not_wait_and_the_next_claim_does(
    make_scheduler: MakeScheduler, tmp_path: Path
) -> None:
    """A repeat gets back what its claim_id handed out, or nothing: it never claims anew,
    so a long-poll would hold it for the whole wait (once the heartbeat gave its jobs
    up, every re-check comes back empty). It goes with wait_ms 0; the claim after its
    answer is a new one, at once and long-polling again."""
    clock = FakeClock()
    features = [m.FEATURE_CLAIM_ID, m.FEATURE_LONG_POLL]
    fake = SleepsAtClaim(clock, features)
    fake.fail_next("claim", NetworkError("reset"))
    settings = Settings(state_dir=tmp_path, long_poll_ms=20_000, claim_hedge_ms=0)
    scheduler = make_scheduler(
        fake, clock=clock, hooks=RecordingHooks(), features=features, settings=settings
    )

    await run_until(scheduler.claim_loop, lambda: fake.count("claim") >= 3, "claims")

    first, repeat, new = fake.requests("claim")[:3]
    assert (first.wait_ms, repeat.wait_ms, new.wait_ms) == (20_000, 0, 20_000)
    assert first.claim_id == repeat.claim_id != new.claim_id
    assert fake.slept_at_claim[:3] == [0, 0, 0]


class OutageAfterAStreak(SleepsAtClaim):
    """Fails `MAX_AT_ONCE + 2` claims in a row; with the last of the streak the bot stops
    claiming (its circuit opened), until the test lets it again."""

    def __init__(self, clock: FakeClock, hooks: RecordingHooks) -> None:
        super().__init__(clock, [m.FEATURE_CLAIM_ID])
        self.hooks = hooks
        self.fail_next("claim", *[NetworkError("reset")] * (MAX_AT_ONCE + 2))

    async def claim(self, request: m.ClaimRequest) -> m.ClaimResponse:
        if len(self.slept_at_claim) == MAX_AT_ONCE:
            self.hooks.allowed = False
        return await super().claim(request)


async def test_after_claims_were_stopped_a_failure_is_asked_again_at_once(
    make_scheduler: MakeScheduler,
) -> None:
    """A streak of failures that ended with the circuit opening is the outage's: when
    claims may go again, the first failure is asked again at once, not after the
    streak's backoff."""
    clock, hooks = FakeClock(), RecordingHooks()
    fake = OutageAfterAStreak(clock, hooks)
    scheduler = make_scheduler(fake, clock=clock, hooks=hooks, features=[m.FEATURE_CLAIM_ID])

    async def reopen() -> None:
        await eventually(lambda: scheduler.claims.waiting_for_room, "claims stopped")
        hooks.allowed = True
        scheduler.wake.set()

    reopening = asyncio.ensure_future(reopen())
    claims = MAX_AT_ONCE + 3
    await run_until(scheduler.claim_loop, lambda: fake.count("claim") >= claims, "claims")
    await reopening

    streak, after = fake.slept_at_claim[: MAX_AT_ONCE + 1], fake.slept_at_claim[MAX_AT_ONCE + 1 :]
    assert streak == [0] * (MAX_AT_ONCE + 1)
    assert after[:2] == [after[0]] * 2  # the failure after the reopening: asked at once
