"""The read verbs (reads modules), on every backend: listings, stats, next_run_at, and
the claim outlook, which must agree with `claim_jobs`."""

from __future__ import annotations

from datetime import timedelta

import pytest

from botfleet.clock import FakeClock
from coordinator.store.base import (
    ClaimInput,
    ClaimOutlook,
    JobQuery,
    Store,
)
from tests.unit.store.support import (
    BOT_LEASE_TTL_S,
    JOB_LEASE_TTL_S,
    claim_ids,
    complete,
    fail,
    new_job,
    register,
    submit,
)


async def test_an_unknown_bot_is_not_online(store: Store) -> None:
    assert await store.claim_outlook("bot_missing", ["sum"]) == ClaimOutlook(False, None)
    assert await store.claim_jobs(ClaimInput("bot_missing", ["sum"], 1, JOB_LEASE_TTL_S)) is None


async def test_an_online_bot_with_nothing_queued(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    assert await store.claim_outlook(bot.id, ["sum"]) == ClaimOutlook(True, None)
    assert await claim_ids(store, bot.id) == []


async def test_the_earliest_run_at_of_the_operations_asked_for(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    start = clock.now()
    await submit(store, clock, op="sum", delay_s=30)
    await submit(store, clock, op="subtract", delay_s=10)
    await submit(store, clock, op="resize", delay_s=5)
    outlook = await store.claim_outlook(bot.id, ["sum", "subtract", "sum"])
    assert outlook == ClaimOutlook(True, start + timedelta(seconds=10))
    assert outlook.next_run_at == await store.next_run_at(["sum", "subtract"])
    assert (await store.claim_outlook(bot.id, ["other"])).next_run_at is None
    # Nothing due yet: the claim it stands for would hand out nothing.
    assert await claim_ids(store, bot.id, ["sum", "subtract"]) == []
    clock.advance(10)
    assert await claim_ids(store, bot.id, ["sum", "subtract"]) != []


async def test_only_queued_jobs_count(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    first = await submit(store, clock)
    second = await submit(store, clock)
    assert await claim_ids(store, bot.id, limit=1) == [first]
    assert (await store.claim_outlook(bot.id, ["sum"])).next_run_at == clock.now()
    assert await claim_ids(store, bot.id, limit=1) == [second]
    await store.report(bot.id, [complete(first)])
    assert await store.claim_outlook(bot.id, ["sum"]) == ClaimOutlook(True, None)


async def test_a_deregistered_bot_is_not_online(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    await submit(store, clock)
    await store.deregister_bot(bot.id, bot.instance_id)
    assert await store.claim_outlook(bot.id, ["sum"]) == ClaimOutlook(False, clock.now())
    assert await store.claim_jobs(ClaimInput(bot.id, ["sum"], 1, JOB_LEASE_TTL_S)) is None


async def test_a_bot_whose_lease_ran_out_is_not_online(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    clock.advance(BOT_LEASE_TTL_S + 1)
    await store.expire_leases()
    assert not (await store.claim_outlook(bot.id, ["sum"])).bot_online
    assert await store.claim_jobs(ClaimInput(bot.id, ["sum"], 1, JOB_LEASE_TTL_S)) is None
    # Registering again brings it back.
    again = await register(store, clock)
    assert again.id == bot.id and (await store.claim_outlook(bot.id, ["sum"])).bot_online


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
