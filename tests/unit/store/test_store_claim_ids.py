"""A repeated `claim_id`, on every backend: the jobs already handed out for it come back,
nothing new is claimed, and max_concurrency holds."""

from __future__ import annotations

from botfleet.clock import FakeClock
from coordinator.store.base import (
    ClaimInput,
    HandedBack,
    JobQuery,
    JobRecord,
    ReportOutcome,
    Store,
)
from tests.support.backends import StoreFactory
from tests.unit.store.support import JOB_LEASE_TTL_S, complete, new_job, register


async def _claim(
    store: Store, bot_id: str, claim_id: str | None, limit: int = 3
) -> list[JobRecord]:
    jobs = await store.claim_jobs(ClaimInput(bot_id, ("sum",), limit, JOB_LEASE_TTL_S, claim_id))
    assert jobs is not None
    return jobs


def _ids(jobs: list[JobRecord]) -> list[str]:
    return [job.id for job in jobs]


async def test_a_repeated_claim_id_gets_the_same_jobs_and_claims_nothing_new(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    await store.submit_jobs([new_job(clock, priority=i) for i in range(8)])
    first = await _claim(store, bot.id, "claim-1")
    assert len(first) == 3
    clock.advance(2)
    again = await _claim(store, bot.id, "claim-1")
    assert _ids(again) == _ids(first)
    assert [(j.attempt, j.lease_until) for j in again] == [
        (j.attempt, j.lease_until) for j in first
    ]
    running = [j for j in await _running(store) if j.bot_id == bot.id]
    assert sorted(_ids(running)) == sorted(_ids(first))


async def test_a_new_claim_id_claims_anew(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    await store.submit_jobs([new_job(clock) for _ in range(8)])
    first = await _claim(store, bot.id, "claim-1")
    second = await _claim(store, bot.id, "claim-2")
    assert len(second) == 3 and not set(_ids(first)) & set(_ids(second))
    unnamed = await _claim(store, bot.id, None)
    assert len(unnamed) == 2 and not set(_ids(unnamed)) & set(_ids(first) + _ids(second))


async def test_a_repeat_after_reports_returns_none_of_the_finished_jobs(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    await store.submit_jobs([new_job(clock) for _ in range(3)])
    first = _ids(await _claim(store, bot.id, "claim-1"))
    assert await store.report(bot.id, [complete(first[0], total=3)]) == [ReportOutcome.ACCEPTED]
    assert _ids(await _claim(store, bot.id, "claim-1")) == first[1:]
    await store.report(bot.id, [complete(job_id, total=3) for job_id in first[1:]])
    await store.submit_jobs([new_job(clock)])
    # Nothing of it runs any more, and a late copy of it claims nothing new either: the
    # bot stopped listening for its answer. A new claim id gets the new job.
    assert await _claim(store, bot.id, "claim-1") == []
    fresh = _ids(await _claim(store, bot.id, "claim-2"))
    assert len(fresh) == 1 and not set(fresh) & set(first)


async def test_only_a_repeat_is_answered_as_one(store: Store, clock: FakeClock) -> None:
    # The long-poll answers a repeat at once, even empty: it must tell one apart.
    bot = await register(store, clock)
    await store.submit_jobs([new_job(clock)])
    first = await _claim(store, bot.id, "claim-1")
    assert not isinstance(first, HandedBack) and len(first) == 1
    assert isinstance(await _claim(store, bot.id, "claim-1"), HandedBack)
    await store.report(bot.id, [complete(first[0].id, total=3)])
    empty = await _claim(store, bot.id, "claim-1")
    assert isinstance(empty, HandedBack) and empty == []
    assert not isinstance(await _claim(store, bot.id, "claim-2"), HandedBack)
    assert not isinstance(await _claim(store, bot.id, None), HandedBack)


async def test_max_concurrency_holds_across_repeats(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock, max_concurrency=3)
    await store.submit_jobs([new_job(clock) for _ in range(10)])
    first = _ids(await _claim(store, bot.id, "claim-1", limit=2))
    assert len(first) == 2
    assert _ids(await _claim(store, bot.id, "claim-1", limit=10)) == first
    second = _ids(await _claim(store, bot.id, "claim-2", limit=10))
    assert len(second) == 1
    assert _ids(await _claim(store, bot.id, "claim-1", limit=10)) == first
    assert _ids(await _claim(store, bot.id, "claim-2", limit=10)) == second
    assert await _claim(store, bot.id, "claim-3", limit=10) == []
    assert len([j for j in await _running(store) if j.bot_id == bot.id]) == 3


async def test_a_claim_id_is_the_bots_own(store: Store, clock: FakeClock) -> None:
    one = await register(store, clock, bot_key="host-a/one", instance_id="i-one")
    two = await register(store, clock, bot_key="host-b/two", instance_id="i-two")
    await store.submit_jobs([new_job(clock) for _ in range(4)])
    first = _ids(await _claim(store, one.id, "same-id", limit=2))
    other = _ids(await _claim(store, two.id, "same-id", limit=2))
    assert len(other) == 2 and not set(first) & set(other)


async def test_the_outlook_tells_a_repeat_of_a_claim_that_handed_out_jobs(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    await store.submit_jobs([new_job(clock)])
    assert not (await store.claim_outlook(bot.id, ["sum"], "claim-1")).handed_out
    (job,) = await _claim(store, bot.id, "claim-1")
    assert (await store.claim_outlook(bot.id, ["sum"], "claim-1")).handed_out
    assert not (await store.claim_outlook(bot.id, ["sum"], "claim-2")).handed_out
    assert not (await store.claim_outlook(bot.id, ["sum"])).handed_out
    await store.report(bot.id, [complete(job.id, total=3)])
    # Still a repeat once its jobs ended: answered at once (with nothing), never waiting.
    assert (await store.claim_outlook(bot.id, ["sum"], "claim-1")).handed_out


async def test_a_repeat_carrying_reports_applies_them_and_hands_back(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    await store.submit_jobs([new_job(clock) for _ in range(4)])
    earlier = _ids(await _claim(store, bot.id, "claim-0", limit=1))
    first = _ids(await _claim(store, bot.id, "claim-1", limit=2))
    claim = ClaimInput(bot.id, ("sum",), 3, JOB_LEASE_TTL_S, "claim-1")
    outcomes, jobs = await store.report_and_claim(claim, [complete(earlier[0], total=3)])
    assert outcomes == [ReportOutcome.ACCEPTED]
    assert jobs is not None and _ids(jobs) == first


async def test_a_repeat_reaching_another_coordinator_gets_the_same_jobs(
    store_factory: StoreFactory, clock: FakeClock
) -> None:
    one, two = store_factory(), store_factory()
    await one.open()
    await two.open()
    try:
        bot = await register(one, clock)
        await one.submit_jobs([new_job(clock) for _ in range(6)])
        first = _ids(await _claim(one, bot.id, "claim-1"))
        assert _ids(await _claim(two, bot.id, "claim-1")) == first
        assert len(_ids(await _claim(two, bot.id, "claim-2"))) == 3
    finally:
        await two.close()
        await one.close()


async def _running(store: Store) -> list[JobRecord]:
    page, _ = await store.list_jobs(JobQuery("running", None, 1000, None))
    return page
