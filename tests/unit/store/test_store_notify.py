"""What a commit tells the store's listener (notify modules), on every backend."""

from __future__ import annotations

from botfleet.clock import FakeClock
from coordinator.store.base import Store
from tests.unit.store.support import (
    JOB_LEASE_TTL_S,
    RecordingListener,
    claim_ids,
    complete,
    fail,
    heartbeat,
    new_job,
    register,
    submit,
)


async def test_listener_hears_of_new_requeued_and_finished_jobs(
    store: Store, clock: FakeClock, listener: RecordingListener
) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock, op="sum")
    await listener.until(lambda: listener.announced("sum"))
    await claim_ids(store, bot.id)
    listener.available.clear()
    await store.report(bot.id, [fail(job_id)])
    await listener.until(lambda: listener.announced("sum"))
    clock.advance(10)
    await claim_ids(store, bot.id)
    listener.available.clear()
    clock.advance(JOB_LEASE_TTL_S + 1)
    await heartbeat(store, bot)
    await store.expire_leases()
    await listener.until(lambda: listener.announced("sum"))
    await claim_ids(store, bot.id)
    await store.report(bot.id, [complete(job_id)])
    await listener.until(lambda: job_id in listener.finished)


async def test_listener_is_told_how_many_jobs_became_claimable(
    store: Store, clock: FakeClock, listener: RecordingListener
) -> None:
    # Waiting claims are woken only as many as the jobs need (None would wake them all).
    await store.submit_jobs([new_job(clock, op="sum") for _ in range(3)] + [new_job(clock)])
    await listener.until(lambda: listener.announced("sum"))
    assert listener.counts == [4]
    bot = await register(store, clock)
    claimed = await claim_ids(store, bot.id, limit=2)
    listener.available.clear()
    listener.counts.clear()
    await store.report(bot.id, [fail(job_id) for job_id in claimed])
    await listener.until(lambda: listener.announced("sum"))
    assert listener.counts == [2]


async def test_listener_hears_of_cancel_retry_and_final_failure(
    store: Store, clock: FakeClock, listener: RecordingListener
) -> None:
    bot = await register(store, clock)
    cancelled = await submit(store, clock, op="subtract")
    failed = await submit(store, clock, op="sum", max_attempts=1)
    await store.cancel_job(cancelled)
    await listener.until(lambda: cancelled in listener.finished)
    listener.available.clear()
    await store.retry_job(cancelled)
    await listener.until(lambda: listener.announced("subtract"))
    await claim_ids(store, bot.id, ["sum"])
    clock.advance(JOB_LEASE_TTL_S + 1)
    await heartbeat(store, bot)
    await store.expire_leases()
    await listener.until(lambda: failed in listener.finished)
