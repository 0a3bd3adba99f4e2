"""Limits on every backend: no claim starts a job past a limit's max_running or faster
than its token bucket allows, the running count follows jobs however they end, and a
limit named op:OP covers every job of OP."""

from __future__ import annotations

import pytest

from botfleet.clock import FakeClock
from coordinator.store.base import Store
from coordinator.store.limits import LimitSpec
from tests.support.backends import StoreFactory
from tests.unit.store.support import (
    JOB_LEASE_TTL_S,
    claim_ids,
    complete,
    fail,
    register,
    submit,
)


async def running_of(store: Store, name: str) -> int:
    (found,) = [limit for limit in await store.list_limits() if limit.name == name]
    return found.running


async def test_limits_are_set_changed_listed_and_deleted(store: Store, clock: FakeClock) -> None:
    await store.put_limit(LimitSpec("db", max_running=2))
    await store.put_limit(LimitSpec("api", per_second=0.5, burst=3))
    await store.put_limit(LimitSpec("db", max_running=5))
    listed = {limit.name: limit for limit in await store.list_limits()}
    assert set(listed) == {"api", "db"}
    assert listed["db"].max_running == 5 and listed["db"].per_second is None
    assert listed["api"].per_second == 0.5 and listed["api"].burst == 3
    assert listed["api"].tokens == 3.0 and listed["api"].running == 0
    assert await store.limit_names() == {"api", "db"}
    assert await store.delete_limit("db") is True
    assert await store.delete_limit("db") is False
    assert await store.limit_names() == {"api"}


async def test_the_job_keeps_the_limits_it_names(store: Store, clock: FakeClock) -> None:
    await store.put_limit(LimitSpec("b", max_running=1))
    await store.put_limit(LimitSpec("a", max_running=1))
    job_id = await submit(store, clock, limits=("b", "a"))
    job = await store.get_job(job_id)
    assert job is not None and job.limits == ("a", "b")
    plain = await store.get_job(await submit(store, clock))
    assert plain is not None and plain.limits == ()


async def test_max_running_holds_across_bots_and_frees_as_jobs_end(
    store: Store, clock: FakeClock
) -> None:
    await store.put_limit(LimitSpec("db", max_running=2))
    one = await register(store, clock, bot_key="a/x")
    two = await register(store, clock, bot_key="b/x")
    limited = [await submit(store, clock, limits=("db",)) for _ in range(5)]
    free = await submit(store, clock)
    assert await claim_ids(store, one.id, limit=1) == [limited[0]]
    assert await claim_ids(store, two.id) == [limited[1], free]
    assert await claim_ids(store, one.id) == []
    assert await running_of(store, "db") == 2
    await store.report(two.id, [complete(limited[1])])
    assert await claim_ids(store, one.id) == [limited[2]]
    await store.report(one.id, [fail(limited[0], retryable=False)])
    assert await claim_ids(store, two.id) == [limited[3]]
    await store.cancel_job(limited[2])
    assert await running_of(store, "db") == 1
    assert await claim_ids(store, two.id) == [limited[4]]


async def test_an_expired_lease_frees_its_place(store: Store, clock: FakeClock) -> None:
    await store.put_limit(LimitSpec("db", max_running=1))
    bot = await register(store, clock)
    first = await submit(store, clock, limits=("db",), max_attempts=1)
    second = await submit(store, clock, limits=("db",))
    assert await claim_ids(store, bot.id) == [first]
    clock.advance(JOB_LEASE_TTL_S + 1)
    await store.expire_leases()
    assert await running_of(store, "db") == 0
    other = await register(store, clock, bot_key="b/x")
    assert await claim_ids(store, other.id) == [second]


async def test_a_job_under_two_limits_needs_room_in_both(store: Store, clock: FakeClock) -> None:
    await store.put_limit(LimitSpec("a", max_running=1))
    await store.put_limit(LimitSpec("b", max_running=5))
    bot = await register(store, clock)
    both = await submit(store, clock, limits=("a", "b"))
    only_a = await submit(store, clock, limits=("a",))
    only_b = await submit(store, clock, limits=("b",))
    assert await claim_ids(store, bot.id) == [both, only_b]
    assert await running_of(store, "b") == 2
    await store.report(bot.id, [complete(both)])
    assert await claim_ids(store, bot.id) == [only_a]


async def test_an_op_limit_covers_every_job_of_the_operation(
    store: Store, clock: FakeClock
) -> None:
    await store.put_limit(LimitSpec("op:sum", max_running=1))
    bot = await register(store, clock)
    sums = [await submit(store, clock) for _ in range(2)]
    subtract = await submit(store, clock, op="subtract")
    assert await claim_ids(store, bot.id, operations=("sum", "subtract")) == [sums[0], subtract]
    assert await claim_ids(store, bot.id, operations=("sum", "subtract")) == []
    await store.report(bot.id, [complete(sums[0])])
    assert await claim_ids(store, bot.id, operations=("sum", "subtract")) == [sums[1]]


async def test_a_deleted_limit_no_longer_holds_its_jobs(store: Store, clock: FakeClock) -> None:
    await store.put_limit(LimitSpec("db", max_running=1))
    bot = await register(store, clock)
    jobs = [await submit(store, clock, limits=("db",)) for _ in range(3)]
    assert await claim_ids(store, bot.id) == jobs[:1]
    await store.delete_limit("db")
    assert await claim_ids(store, bot.id) == jobs[1:]


async def test_the_rate_is_a_token_bucket(store: Store, clock: FakeClock) -> None:
    await store.put_limit(LimitSpec("api", per_second=2.0, burst=3))
    bot = await register(store, clock, max_concurrency=100)
    jobs = [await submit(store, clock, limits=("api",)) for _ in range(10)]
    assert await claim_ids(store, bot.id) == jobs[:3]  # the burst
    assert await claim_ids(store, bot.id) == []
    clock.advance(0.5)
    assert await claim_ids(store, bot.id) == jobs[3:4]
    clock.advance(1.0)
    assert await claim_ids(store, bot.id) == jobs[4:6]
    clock.advance(60)
    assert await claim_ids(store, bot.id) == jobs[6:9]  # never more than the burst


async def test_a_full_limit_leaves_the_other_jobs_to_claim(store: Store, clock: FakeClock) -> None:
    await store.put_limit(LimitSpec("db", max_running=1))
    bot = await register(store, clock)
    blocked = [await submit(store, clock, limits=("db",), priority=9) for _ in range(20)]
    free = [await submit(store, clock) for _ in range(3)]
    assert await claim_ids(store, bot.id) == [blocked[0], *free]


async def test_a_restarted_store_keeps_counting(
    store_factory: StoreFactory, clock: FakeClock
) -> None:
    first = store_factory()
    await first.open()
    await first.put_limit(LimitSpec("db", max_running=1))
    bot = await register(first, clock)
    jobs = [await submit(first, clock, limits=("db",)) for _ in range(2)]
    assert await claim_ids(first, bot.id) == jobs[:1]
    await first.close()
    second = store_factory()
    await second.open()
    try:
        assert await claim_ids(second, bot.id) == []
        assert await running_of(second, "db") == 1
    finally:
        await second.close()


async def test_starts_are_counted_and_read_as_a_rate_over_the_last_window(
    store: Store, clock: FakeClock
) -> None:
    await store.put_limit(LimitSpec("db", max_running=3))
    bot = await register(store, clock, max_concurrency=100)
    jobs = [await submit(store, clock, limits=("db",)) for _ in range(5)]
    assert await claim_ids(store, bot.id) == jobs[:3]  # 3 starts at a window's beginning

    async def rate() -> float:
        (found,) = await store.list_limits()
        return found.starts_per_second

    assert await rate() == pytest.approx(0.3)
    clock.advance(15)  # half of the last 10 s lies in the window of the 3 starts
    assert await rate() == pytest.approx(0.15)
    for job_id in jobs[:2]:
        await store.report(bot.id, [complete(job_id)])
    assert await claim_ids(store, bot.id) == jobs[3:5]
    assert await rate() == pytest.approx(0.15 + 0.2)
    clock.advance(30)
    assert await rate() == 0.0


async def test_the_jobs_ready_under_each_limit_and_those_held_back(
    store: Store, clock: FakeClock
) -> None:
    await store.put_limit(LimitSpec("db", max_running=2))
    await store.put_limit(LimitSpec("api", per_second=1.0, burst=5))
    await store.put_limit(LimitSpec("op:subtract", max_running=0))
    bot = await register(store, clock, max_concurrency=100)
    db = [await submit(store, clock, limits=("db",)) for _ in range(5)]
    await submit(store, clock, limits=("api", "db"))
    await submit(store, clock, limits=("db",), delay_s=60)  # not due: not ready
    await submit(store, clock, op="subtract")
    await submit(store, clock, op="subtract", limits=("api",))
    assert await store.queued_by_limit() == {"db": 6, "api": 2, "op:subtract": 2}
    assert await claim_ids(store, bot.id) == db[:2]
    queued = await store.queued_by_limit()
    assert queued == {"db": 4, "api": 2, "op:subtract": 2}
    held = {limit.name: limit.held_back(queued[limit.name]) for limit in await store.list_limits()}
    assert held == {"db": 4, "api": 0, "op:subtract": 2}
