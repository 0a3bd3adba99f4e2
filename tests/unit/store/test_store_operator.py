"""Operator verbs, listings, stats, wake-ups, the listener and restarts, on every backend."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from botfleet.clock import FakeClock
from coordinator.store.base import JobQuery, ReportOutcome, Store
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
    wait_until,
)

ACCEPTED = ReportOutcome.ACCEPTED
CONFLICT = ReportOutcome.CONFLICT
NOT_FOUND = ReportOutcome.NOT_FOUND


async def test_cancel_a_queued_job(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    outcome, job = await store.cancel_job(job_id)
    assert outcome == ACCEPTED
    assert job is not None and (job.state, job.finished_at) == ("cancelled", clock.now())
    assert await claim_ids(store, bot.id) == []


async def test_cancel_a_running_job_tells_its_bot(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    await claim_ids(store, bot.id)
    outcome, job = await store.cancel_job(job_id)
    assert outcome == ACCEPTED and job is not None and job.state == "cancelled"
    (attempt,) = await store.list_attempts(job_id)
    assert (attempt.outcome, attempt.ended_at) == ("cancelled", clock.now())
    beat = await heartbeat(store, bot, [job_id])
    assert beat is not None and beat.cancel == (job_id,) and beat.extended == {}
    clock.advance(JOB_LEASE_TTL_S + 1)
    await heartbeat(store, bot)
    assert (await store.expire_leases()).requeued == ()


async def test_cancel_a_terminal_job_conflicts(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    await claim_ids(store, bot.id)
    await store.report(bot.id, [complete(job_id, total=3)])
    outcome, job = await store.cancel_job(job_id)
    assert outcome == CONFLICT
    assert job is not None and (job.state, job.result) == ("succeeded", {"total": 3})
    assert await store.cancel_job("job_missing") == (NOT_FOUND, None)


async def test_retry_a_failed_job_gives_fresh_attempts(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock, max_attempts=2)
    await claim_ids(store, bot.id)
    await store.report(bot.id, [fail(job_id, retryable=False, error="broken")])
    clock.advance(60)
    outcome, job = await store.retry_job(job_id)
    assert outcome == ACCEPTED and job is not None
    assert (job.state, job.attempt, job.run_at) == ("queued", 1, clock.now())
    assert (job.finished_at, job.result) == (None, None)
    # Two fresh attempts: numbers keep rising, the budget starts again.
    for expected in (2, 3):
        assert await claim_ids(store, bot.id) == [job_id]
        clock.advance(JOB_LEASE_TTL_S + 1)
        await heartbeat(store, bot)
        await store.expire_leases()
        job = await store.get_job(job_id)
        assert job is not None and job.attempt == expected
    assert job.state == "failed" and job.error == "lease expired"
    attempts = await store.list_attempts(job_id)
    assert [a.attempt for a in attempts] == [1, 2, 3]


async def test_retry_a_cancelled_job(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    await store.cancel_job(job_id)
    outcome, job = await store.retry_job(job_id)
    assert outcome == ACCEPTED and job is not None and job.state == "queued"
    assert await claim_ids(store, bot.id) == [job_id]


async def test_retry_of_a_live_or_succeeded_job_conflicts(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    queued = await submit(store, clock)
    assert (await store.retry_job(queued))[0] == CONFLICT
    await claim_ids(store, bot.id)
    assert (await store.retry_job(queued))[0] == CONFLICT
    await store.report(bot.id, [complete(queued)])
    outcome, job = await store.retry_job(queued)
    assert outcome == CONFLICT and job is not None and job.state == "succeeded"
    assert await store.retry_job("job_missing") == (NOT_FOUND, None)


async def test_list_jobs_newest_first_with_a_stable_cursor(store: Store, clock: FakeClock) -> None:
    ids = [o.job.id for o in await store.submit_jobs([new_job(clock) for _ in range(7)])]
    page, cursor = await store.list_jobs(JobQuery(None, None, 3, None))
    assert [job.id for job in page] == ids[::-1][:3] and cursor is not None
    # New jobs arriving between pages do not shift the next page.
    await store.submit_jobs([new_job(clock) for _ in range(2)])
    page, cursor = await store.list_jobs(JobQuery(None, None, 3, cursor))
    assert [job.id for job in page] == ids[::-1][3:6] and cursor is not None
    page, cursor = await store.list_jobs(JobQuery(None, None, 3, cursor))
    assert [job.id for job in page] == ids[:1] and cursor is None


async def test_list_jobs_exact_last_page_has_no_cursor(store: Store, clock: FakeClock) -> None:
    await store.submit_jobs([new_job(clock) for _ in range(4)])
    page, cursor = await store.list_jobs(JobQuery(None, None, 2, None))
    page, cursor = await store.list_jobs(JobQuery(None, None, 2, cursor))
    assert len(page) == 2 and cursor is None


async def test_list_jobs_filters(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    first_sum = await submit(store, clock, op="sum")
    first_sub = await submit(store, clock, op="subtract")
    second_sum = await submit(store, clock, op="sum")
    second_sub = await submit(store, clock, op="subtract")
    assert await claim_ids(store, bot.id, ["sum"], limit=1) == [first_sum]

    async def ids(state: str | None, op: str | None, limit: int = 10) -> list[str]:
        page, _ = await store.list_jobs(JobQuery(state, op, limit, None))
        return [job.id for job in page]

    assert await ids(None, "subtract") == [second_sub, first_sub]
    assert await ids("running", None) == [first_sum]
    assert await ids("queued", None) == [second_sub, second_sum, first_sub]
    assert await ids("queued", "sum") == [second_sum]
    assert await ids("failed", None) == []
    page, cursor = await store.list_jobs(JobQuery("queued", None, 1, None))
    page, cursor = await store.list_jobs(JobQuery("queued", None, 1, cursor))
    assert [job.id for job in page] == [second_sum]


@pytest.mark.parametrize("cursor", ["", "garbage", "c", "cZZ", "-1", "c" + "f" * 40])
async def test_malformed_cursor_is_a_value_error(store: Store, cursor: str) -> None:
    with pytest.raises(ValueError):
        await store.list_jobs(JobQuery(None, None, 10, cursor))


async def test_stats(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    gone = await register(store, clock, bot_key="host-b/gone", instance_id="i-g")
    await store.deregister_bot(gone.id, gone.instance_id)
    ids = [o.job.id for o in await store.submit_jobs([new_job(clock) for _ in range(4)])]
    sub = await submit(store, clock, op="subtract")
    await claim_ids(store, bot.id, ["sum"], limit=3)
    await store.report(bot.id, [complete(ids[0]), fail(ids[1], retryable=False)])
    clock.advance(61)
    await store.report(bot.id, [complete(ids[2])])
    await store.cancel_job(sub)
    stats = await store.stats(window_s=60)
    assert stats.jobs_by_state == {
        "queued": 1,
        "running": 0,
        "succeeded": 2,
        "failed": 1,
        "cancelled": 1,
    }
    assert stats.jobs_by_op == {
        "sum": {"queued": 1, "succeeded": 2, "failed": 1},
        "subtract": {"cancelled": 1},
    }
    assert stats.bots_by_state == {"online": 1, "offline": 1}
    # Only the completion within the last minute counts.
    assert (stats.succeeded_last_window, stats.failed_last_window) == (1, 0)
    assert stats.window_s == 60
    assert stats.oldest_queued_at == clock.now() - timedelta(seconds=61)
    wide = await store.stats(window_s=3600)
    assert (wide.succeeded_last_window, wide.failed_last_window) == (2, 1)


async def test_stats_of_an_empty_store(store: Store) -> None:
    stats = await store.stats()
    assert set(stats.jobs_by_state.values()) == {0}
    assert stats.jobs_by_op == {} and stats.oldest_queued_at is None


async def test_next_run_at(store: Store, clock: FakeClock) -> None:
    assert await store.next_run_at(["sum"]) is None
    start = clock.now()
    await submit(store, clock, op="sum", delay_s=30)
    await submit(store, clock, op="subtract", delay_s=10)
    await submit(store, clock, op="resize", delay_s=5)
    assert await store.next_run_at(["sum"]) == start + timedelta(seconds=30)
    assert await store.next_run_at(["sum", "subtract"]) == start + timedelta(seconds=10)
    assert await store.next_run_at(["other"]) is None


async def test_listener_hears_of_new_requeued_and_finished_jobs(
    store: Store, clock: FakeClock, listener: RecordingListener
) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock, op="sum")
    await wait_until(lambda: listener.announced("sum"))
    await claim_ids(store, bot.id)
    listener.available.clear()
    await store.report(bot.id, [fail(job_id)])
    await wait_until(lambda: listener.announced("sum"))
    clock.advance(10)
    await claim_ids(store, bot.id)
    listener.available.clear()
    clock.advance(JOB_LEASE_TTL_S + 1)
    await heartbeat(store, bot)
    await store.expire_leases()
    await wait_until(lambda: listener.announced("sum"))
    await claim_ids(store, bot.id)
    await store.report(bot.id, [complete(job_id)])
    await wait_until(lambda: job_id in listener.finished)


async def test_listener_is_told_how_many_jobs_became_claimable(
    store: Store, clock: FakeClock, listener: RecordingListener
) -> None:
    # Waiting claims are woken only as many as the jobs need (None would wake them all).
    await store.submit_jobs([new_job(clock, op="sum") for _ in range(3)] + [new_job(clock)])
    await wait_until(lambda: listener.announced("sum"))
    assert listener.counts == [4]
    bot = await register(store, clock)
    claimed = await claim_ids(store, bot.id, limit=2)
    listener.available.clear()
    listener.counts.clear()
    await store.report(bot.id, [fail(job_id) for job_id in claimed])
    await wait_until(lambda: listener.announced("sum"))
    assert listener.counts == [2]


async def test_listener_hears_of_cancel_retry_and_final_failure(
    store: Store, clock: FakeClock, listener: RecordingListener
) -> None:
    bot = await register(store, clock)
    cancelled = await submit(store, clock, op="subtract")
    failed = await submit(store, clock, op="sum", max_attempts=1)
    await store.cancel_job(cancelled)
    await wait_until(lambda: cancelled in listener.finished)
    listener.available.clear()
    await store.retry_job(cancelled)
    await wait_until(lambda: listener.announced("subtract"))
    await claim_ids(store, bot.id, ["sum"])
    clock.advance(JOB_LEASE_TTL_S + 1)
    await heartbeat(store, bot)
    await store.expire_leases()
    await wait_until(lambda: failed in listener.finished)


async def test_data_survives_close_and_reopen(
    store_factory: Callable[[], Store], clock: FakeClock
) -> None:
    first = store_factory()
    await first.open()
    bot = await register(first, clock)
    done = await submit(first, clock)
    running = await submit(first, clock, idempotency_key="keep")
    await claim_ids(first, bot.id, limit=2)
    await first.report(bot.id, [complete(done, total=3)])
    await first.close()

    second = store_factory()
    await second.open()
    try:
        job = await second.get_job(done)
        assert job is not None and (job.state, job.result) == ("succeeded", {"total": 3})
        again = await second.get_bot(bot.id)
        assert again is not None and again.running == (running,)
        (outcome,) = await second.submit_jobs([new_job(clock, idempotency_key="keep")])
        assert not outcome.created and outcome.job.id == running
        assert await second.report(bot.id, [complete(running)]) == [ACCEPTED]
    finally:
        await second.close()


async def test_open_twice_and_close_twice(store_factory: Callable[[], Store]) -> None:
    store = store_factory()
    await store.close()  # before open: nothing to do
    await store.open()
    await store.open()
    await store.ping()
    await store.close()
    await store.close()
