"""Labels on every backend: a job that requires labels goes only to a bot whose labels
meet every requirement, decided in the claim; the outlook and next_run_at of a bot
count only the jobs it may take."""

from __future__ import annotations

from datetime import timedelta

from botfleet.clock import FakeClock
from coordinator.store.base import ClaimOutlook, Store
from tests.unit.store.support import claim_ids, register, submit


async def test_labels_are_stored_with_the_bot_and_replaced_on_registering_again(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock, labels={"gpu": "a100", "region": "eu"})
    assert bot.labels == {"gpu": "a100", "region": "eu"}
    again = await register(store, clock, labels={"gpu": "h100"})
    assert again.id == bot.id
    assert again.labels == {"gpu": "h100"}
    unlabelled = await register(store, clock, bot_key="host-b/default")
    assert unlabelled.labels == {}
    listed = {listed.id: listed.labels for listed in await store.list_bots()}
    assert listed == {bot.id: {"gpu": "h100"}, unlabelled.id: {}}


async def test_requirements_are_stored_with_the_job(store: Store, clock: FakeClock) -> None:
    required = await submit(store, clock, requires={"gpu": ["a100", "h100"]})
    plain = await submit(store, clock)
    job = await store.get_job(required)
    assert job is not None and job.requires == {"gpu": ["a100", "h100"]}
    other = await store.get_job(plain)
    assert other is not None and other.requires is None


async def test_a_job_goes_only_to_a_bot_that_meets_every_requirement(
    store: Store, clock: FakeClock
) -> None:
    gpu_eu = await register(store, clock, bot_key="a/x", labels={"gpu": "a100", "region": "eu"})
    gpu_us = await register(store, clock, bot_key="b/x", labels={"gpu": "a100", "region": "us"})
    bare = await register(store, clock, bot_key="c/x")
    job = await submit(store, clock, requires={"gpu": ["a100"], "region": ["eu"]})
    assert await claim_ids(store, bare.id) == []
    assert await claim_ids(store, gpu_us.id) == []
    assert await claim_ids(store, gpu_eu.id) == [job]


async def test_a_list_of_values_allows_any_of_them(store: Store, clock: FakeClock) -> None:
    a100 = await register(store, clock, bot_key="a/x", labels={"gpu": "a100"})
    h100 = await register(store, clock, bot_key="b/x", labels={"gpu": "h100"})
    t4 = await register(store, clock, bot_key="c/x", labels={"gpu": "t4"})
    first = await submit(store, clock, requires={"gpu": ["a100", "h100"]})
    second = await submit(store, clock, requires={"gpu": ["a100", "h100"]})
    assert await claim_ids(store, t4.id) == []
    assert await claim_ids(store, h100.id, limit=1) == [first]
    assert await claim_ids(store, a100.id) == [second]


async def test_a_bot_without_labels_takes_the_jobs_without_requirements_behind_others(
    store: Store, clock: FakeClock
) -> None:
    bare = await register(store, clock, bot_key="a/x")
    gpu = await register(store, clock, bot_key="b/x", labels={"gpu": "a100"})
    blocked = [await submit(store, clock, requires={"gpu": ["a100"]}) for _ in range(3)]
    free = await submit(store, clock)
    assert await claim_ids(store, bare.id) == [free]
    assert await claim_ids(store, bare.id) == []
    assert await claim_ids(store, gpu.id) == blocked


async def test_a_labelled_bot_takes_both_kinds_in_queue_order(
    store: Store, clock: FakeClock
) -> None:
    gpu = await register(store, clock, labels={"gpu": "a100"})
    first = await submit(store, clock)
    second = await submit(store, clock, requires={"gpu": ["a100"]})
    urgent = await submit(store, clock, requires={"gpu": ["a100"]}, priority=5)
    elsewhere = await submit(store, clock, requires={"gpu": ["h100"]})
    third = await submit(store, clock)
    assert await claim_ids(store, gpu.id, limit=3) == [urgent, first, second]
    assert await claim_ids(store, gpu.id) == [third]
    job = await store.get_job(elsewhere)
    assert job is not None and job.state == "queued"


async def test_the_outlook_counts_only_jobs_the_bot_may_take(
    store: Store, clock: FakeClock
) -> None:
    bare = await register(store, clock, bot_key="a/x")
    gpu = await register(store, clock, bot_key="b/x", labels={"gpu": "a100"})
    start = clock.now()
    await submit(store, clock, requires={"gpu": ["a100"]})
    await submit(store, clock, delay_s=30)
    assert await store.claim_outlook(bare.id, ["sum"]) == ClaimOutlook(
        True, start + timedelta(seconds=30)
    )
    assert await store.next_run_at(["sum"], bare.id) == start + timedelta(seconds=30)
    assert await store.claim_outlook(gpu.id, ["sum"]) == ClaimOutlook(True, start)
    assert await store.next_run_at(["sum"], gpu.id) == start
    # Without a bot: every queued job counts.
    assert await store.next_run_at(["sum"]) == start
    assert await store.next_run_at(["sum"], "bot_missing") == start + timedelta(seconds=30)


async def test_a_requirement_of_a_key_the_bot_lacks_is_not_met(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock, labels={"gpu": "a100"})
    await submit(store, clock, requires={"gpu": ["a100"], "region": ["eu"]})
    assert await claim_ids(store, bot.id) == []
    assert await store.next_run_at(["sum"], bot.id) is None


async def test_the_routes_of_online_bots_are_their_operations_and_labels(
    store: Store, clock: FakeClock
) -> None:
    gpu = await register(store, clock, bot_key="a/x", labels={"gpu": "a100"})
    bare = await register(store, clock, bot_key="b/x", capabilities=["resize"])
    gone = await register(store, clock, bot_key="c/x", labels={"gpu": "h100"})
    await store.deregister_bot(gone.id, gone.instance_id)
    routes = await store.online_bot_routes()
    assert sorted((route.operations, tuple(route.labels.items())) for route in routes) == [
        (("resize",), ()),
        (("sum", "subtract"), (("gpu", "a100"),)),
    ]
    assert gpu.online and bare.online
