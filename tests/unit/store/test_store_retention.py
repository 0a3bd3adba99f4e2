"""Retention and expiry (`Store.sweep`), on every backend, with the fake clock."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from botfleet.clock import FakeClock
from coordinator.store.base import Retention, Store
from coordinator.store.retention import EXPIRED
from tests.support.backends import StoreFactory
from tests.unit.store.support import (
    RecordingListener,
    claim_ids,
    complete,
    heartbeat,
    new_job,
    register,
    submit,
)

HOUR_S = 3600.0
KEEP_AN_HOUR = Retention(finished_s=HOUR_S, bots_s=HOUR_S)


async def job_counts(store: Store) -> dict[str, int]:
    """Jobs by state, the empty states left out."""
    by_state = (await store.stats()).jobs_by_state
    return {state: n for state, n in by_state.items() if n}


async def finished_job(store: Store, clock: FakeClock, bot_id: str) -> str:
    job_id = await submit(store, clock)
    assert await claim_ids(store, bot_id) == [job_id]
    await store.report(bot_id, [complete(job_id)])
    return job_id


async def test_finished_jobs_past_the_window_go_with_their_attempts(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    old = await finished_job(store, clock, bot.id)
    cancelled = await submit(store, clock)
    await store.cancel_job(cancelled)
    clock.advance(HOUR_S + 1)
    recent = await finished_job(store, clock, bot.id)
    running = await submit(store, clock)
    assert await claim_ids(store, bot.id) == [running]
    queued = await submit(store, clock)

    outcome = await store.sweep(KEEP_AN_HOUR)

    assert (outcome.jobs_deleted, outcome.expired, outcome.more) == (2, (), False)
    assert await store.get_job(old) is None and await store.get_job(cancelled) is None
    assert await store.list_attempts(old) == []
    for kept, state in ((recent, "succeeded"), (running, "running"), (queued, "queued")):
        job = await store.get_job(kept)
        assert job is not None and job.state == state
    assert len(await store.list_attempts(recent)) == 1
    assert await job_counts(store) == {"succeeded": 1, "running": 1, "queued": 1}


async def test_a_finished_job_is_kept_until_its_window_has_passed(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    job_id = await finished_job(store, clock, bot.id)
    clock.advance(HOUR_S)
    assert (await store.sweep(KEEP_AN_HOUR)).jobs_deleted == 0
    clock.advance(0.001)
    assert (await store.sweep(KEEP_AN_HOUR)).jobs_deleted == 1
    assert await store.get_job(job_id) is None


async def test_never_deletes_nothing(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await finished_job(store, clock, bot.id)
    await store.deregister_bot(bot.id, bot.instance_id)
    clock.advance(365 * 86_400)
    outcome = await store.sweep(Retention(finished_s=None, bots_s=None))
    assert (outcome.jobs_deleted, outcome.bots_forgotten) == (0, 0)
    assert await store.get_job(job_id) is not None
    assert await store.get_bot(bot.id) is not None


async def test_only_offline_bots_past_the_window_are_forgotten(
    store: Store, clock: FakeClock
) -> None:
    gone = await register(store, clock, bot_key="host-a/gone", instance_id="i-gone")
    job_id = await finished_job(store, clock, gone.id)
    await store.deregister_bot(gone.id, gone.instance_id)
    alive = await register(store, clock, bot_key="host-b/alive", instance_id="i-alive")
    clock.advance(HOUR_S - 1)
    lately = await register(store, clock, bot_key="host-c/lately", instance_id="i-lately")
    await store.deregister_bot(lately.id, lately.instance_id)
    clock.advance(2)
    await heartbeat(store, alive)

    outcome = await store.sweep(Retention(finished_s=None, bots_s=HOUR_S))

    assert outcome.bots_forgotten == 1
    assert await store.get_bot(gone.id) is None
    assert {bot.id for bot in await store.list_bots()} == {alive.id, lately.id}
    job = await store.get_job(job_id)
    assert job is not None and job.bot_id == gone.id
    assert [attempt.bot_id for attempt in await store.list_attempts(job_id)] == [gone.id]


async def test_a_queued_job_past_its_deadline_ends_expired(
    store: Store, clock: FakeClock, listener: RecordingListener
) -> None:
    bot = await register(store, clock)
    deadline = clock.now() + timedelta(seconds=5)
    running_id = await submit(store, clock, expires_at=deadline)
    assert await claim_ids(store, bot.id) == [running_id]
    expiring = await submit(store, clock, expires_at=deadline)
    later = await submit(store, clock, expires_at=deadline + timedelta(seconds=10))
    job = await store.get_job(expiring)
    assert job is not None and job.expires_at == deadline

    clock.advance(4.999)
    assert (await store.sweep(KEEP_AN_HOUR)).expired == ()
    clock.advance(0.001)
    outcome = await store.sweep(KEEP_AN_HOUR)

    assert outcome.expired == (expiring,)
    job = await store.get_job(expiring)
    assert job is not None
    assert (job.state, job.error, job.finished_at) == ("cancelled", EXPIRED, clock.now())
    running = await store.get_job(running_id)
    assert running is not None and (running.state, running.error) == ("running", None)
    waiting = await store.get_job(later)
    assert waiting is not None and waiting.state == "queued"
    await listener.until(lambda: expiring in listener.finished)
    assert (await store.sweep(KEEP_AN_HOUR)).expired == ()


async def test_more_rows_than_one_batch_are_all_handled(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    finished = [await finished_job(store, clock, bot.id) for _ in range(5)]
    deadline = clock.now() + timedelta(seconds=1)
    await store.submit_jobs([new_job(clock, expires_at=deadline) for _ in range(5)])
    clock.advance(HOUR_S + 1)
    small = Retention(finished_s=HOUR_S, bots_s=HOUR_S, batch_size=2)

    batches = []
    while True:
        outcome = await store.sweep(small)
        batches.append(outcome)
        if not outcome.more:
            break

    assert [len(b.expired) for b in batches] == [2, 2, 1]
    # The jobs expired in this sweep finished just now: they stay their hour.
    assert sum(b.jobs_deleted for b in batches) == len(finished)
    assert [await store.get_job(job_id) for job_id in finished] == [None] * len(finished)
    assert await job_counts(store) == {"cancelled": 5}


async def test_concurrent_sweeps_share_the_work_and_count_each_row_once(
    store_factory: StoreFactory, clock: FakeClock
) -> None:
    stores = [store_factory(), store_factory()]
    for opened in stores:
        await opened.open()
    try:
        first = stores[0]
        bot = await register(first, clock)
        jobs = [await finished_job(first, clock, bot.id) for _ in range(12)]
        clock.advance(HOUR_S + 1)
        small = Retention(finished_s=HOUR_S, bots_s=HOUR_S, batch_size=3)

        async def drain(one: Store) -> int:
            deleted = 0
            while (outcome := await one.sweep(small)).more:
                deleted += outcome.jobs_deleted
            return deleted + outcome.jobs_deleted

        counts = await asyncio.gather(*(drain(one) for one in stores))
        assert sum(counts) == len(jobs)
        assert [await first.get_job(job_id) for job_id in jobs] == [None] * len(jobs)
    finally:
        for opened in stores:
            await opened.close()
