"""`claim_outlook`: the read a claim makes instead of its write transaction when it
probably finds nothing. It must agree with `claim_jobs` on every backend: an unknown or
offline bot is not online (the claim answers None), and nothing due means the claim
would hand out nothing."""

from __future__ import annotations

from datetime import timedelta

from botfleet.clock import FakeClock
from coordinator.store.base import ClaimInput, ClaimOutlook, Store
from tests.unit.store.support import (
    BOT_LEASE_TTL_S,
    JOB_LEASE_TTL_S,
    claim_ids,
    complete,
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
