"""Lease expiry (the reaper) and the attempt history, on every backend."""

from __future__ import annotations

import asyncio

from botfleet.clock import FakeClock
from coordinator.store.base import ClaimInput, Store
from tests.unit.store.support import (
    BOT_LEASE_TTL_S,
    JOB_LEASE_TTL_S,
    assert_no_overlapping_leases,
    claim_ids,
    heartbeat,
    new_job,
    register,
    submit,
)


async def test_lease_is_valid_until_its_deadline(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    await submit(store, clock)
    await claim_ids(store, bot.id)
    clock.advance(JOB_LEASE_TTL_S)
    outcome = await store.expire_leases()
    assert outcome.requeued == () and outcome.failed == ()


async def test_expired_lease_requeues_with_a_new_attempt(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock, max_attempts=3)
    await claim_ids(store, bot.id)
    clock.advance(JOB_LEASE_TTL_S + 0.001)
    outcome = await store.expire_leases()
    assert outcome.requeued == (job_id,) and outcome.failed == ()
    job = await store.get_job(job_id)
    assert job is not None
    assert (job.state, job.attempt, job.lease_until) == ("queued", 1, None)
    assert await claim_ids(store, bot.id) == [job_id]
    job = await store.get_job(job_id)
    assert job is not None and job.attempt == 2
    attempts = await store.list_attempts(job_id)
    assert [(a.attempt, a.outcome) for a in attempts] == [(1, "expired"), (2, None)]
    assert_no_overlapping_leases(attempts)


async def test_expired_lease_fails_the_job_once_attempts_are_spent(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock, max_attempts=2)
    for attempt in (1, 2):
        assert await claim_ids(store, bot.id) == [job_id]
        clock.advance(JOB_LEASE_TTL_S + 1)
        await heartbeat(store, bot)  # the bot is alive; only its job hangs
        outcome = await store.expire_leases()
        assert outcome.bots_offline == ()
        expected = ((job_id,), ()) if attempt == 1 else ((), (job_id,))
        assert (outcome.requeued, outcome.failed) == expected
    job = await store.get_job(job_id)
    assert job is not None
    assert (job.state, job.error, job.attempt) == ("failed", "lease expired", 2)
    assert job.finished_at == clock.now()
    assert await claim_ids(store, bot.id) == []


async def test_bot_lease_expiry_takes_the_bot_offline_and_requeues(
    store: Store, clock: FakeClock
) -> None:
    quiet = await register(store, clock, bot_key="host-a/quiet", instance_id="i-q")
    alive = await register(store, clock, bot_key="host-b/alive", instance_id="i-a")
    job_id = await submit(store, clock, timeout_s=3600.0)  # the job lease outlives the bot's
    await claim_ids(store, quiet.id)
    clock.advance(BOT_LEASE_TTL_S - 1)
    await heartbeat(store, alive)
    assert (await store.expire_leases()).bots_offline == ()
    clock.advance(2)
    outcome = await store.expire_leases()
    assert outcome.bots_offline == (quiet.id,)
    assert outcome.requeued == (job_id,)
    bot = await store.get_bot(quiet.id)
    assert bot is not None and not bot.online
    still = await store.get_bot(alive.id)
    assert still is not None and still.online
    (attempt,) = await store.list_attempts(job_id)
    assert attempt.outcome == "released"
    assert await claim_ids(store, alive.id) == [job_id]
    assert await store.claim_jobs(ClaimInput(quiet.id, ["sum"], 1, JOB_LEASE_TTL_S)) is None


async def test_expire_leases_twice_is_idempotent(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    ids = [o.job.id for o in await store.submit_jobs([new_job(clock) for _ in range(5)])]
    await claim_ids(store, bot.id)
    clock.advance(BOT_LEASE_TTL_S + 1)
    first = await store.expire_leases()
    second = await store.expire_leases()
    assert first.bots_offline == (bot.id,)
    assert sorted(first.requeued) == sorted(ids)
    assert second == type(second)()
    for job_id in ids:
        attempts = await store.list_attempts(job_id)
        assert len(attempts) == 1 and attempts[0].outcome == "released"


async def test_two_reapers_at_once_requeue_each_job_once(
    store_factory: object, store: Store, clock: FakeClock
) -> None:
    # A second store on the same database is a second coordinator process.
    assert callable(store_factory)
    other: Store = store_factory()
    await other.open()
    try:
        bot = await register(store, clock, max_concurrency=20)
        ids = [o.job.id for o in await store.submit_jobs([new_job(clock) for _ in range(20)])]
        await claim_ids(store, bot.id, limit=20)
        clock.advance(JOB_LEASE_TTL_S + 1)
        await heartbeat(store, bot)
        outcomes = await asyncio.gather(store.expire_leases(), other.expire_leases())
        requeued = [job_id for outcome in outcomes for job_id in outcome.requeued]
        assert sorted(requeued) == sorted(ids)
        for job_id in ids:
            (attempt,) = await store.list_attempts(job_id)
            assert attempt.outcome == "expired"
    finally:
        await other.close()


async def test_attempt_history_has_no_overlapping_live_leases(
    store: Store, clock: FakeClock
) -> None:
    one = await register(store, clock, bot_key="host-a/one", instance_id="i-one")
    two = await register(store, clock, bot_key="host-b/two", instance_id="i-two")
    job_id = await submit(store, clock, max_attempts=10)
    holders = [one, two, one, two]
    for bot in holders:
        await heartbeat(store, one)
        await heartbeat(store, two)
        assert await claim_ids(store, bot.id) == [job_id]
        clock.advance(JOB_LEASE_TTL_S + 1)
        await heartbeat(store, one)
        await heartbeat(store, two)
        await store.expire_leases()
    attempts = await store.list_attempts(job_id)
    assert [a.bot_id for a in attempts] == [bot.id for bot in holders]
    assert [a.outcome for a in attempts] == ["expired"] * 4
    assert_no_overlapping_leases(attempts)


async def test_list_attempts_of_unknown_job_is_empty(store: Store) -> None:
    assert await store.list_attempts("job_missing") == []
