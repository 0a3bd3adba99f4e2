"""A store as a whole, on every backend: restarts, open and close, and random runs of
every verb keeping the invariants."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from botfleet.clock import FakeClock
from coordinator.store.base import (
    BotRecord,
    ClaimInput,
    JobQuery,
    JobRecord,
    ReportOutcome,
    Store,
    StoreError,
)
from tests.unit.store.support import (
    JOB_LEASE_TTL_S,
    assert_no_overlapping_leases,
    claim_ids,
    complete,
    fail,
    heartbeat,
    new_job,
    register,
    submit,
)

ACCEPTED = ReportOutcome.ACCEPTED


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


async def test_open_twice_and_close_twice(
    store_factory: Callable[[], Store], clock: FakeClock
) -> None:
    store = store_factory()
    await store.close()  # before open: nothing to do
    with pytest.raises(StoreError):
        await store.ping()
    await store.open()
    await store.open()
    await store.ping()
    (outcome,) = await store.submit_jobs([new_job(clock)])
    await store.close()
    await store.close()
    with pytest.raises(StoreError):
        await store.ping()
    await store.open()  # the second open changed nothing the first one made
    try:
        found = await store.get_job(outcome.job.id)
        assert found is not None and found.state == "queued"
    finally:
        await store.close()


TERMINAL = {"succeeded", "failed", "cancelled"}


_examples = itertools.count()


bot_index = st.integers(min_value=0, max_value=1)


pick = st.integers(min_value=0, max_value=1000)


step = st.one_of(
    st.tuples(st.just("submit"), st.integers(1, 3), st.integers(1, 3)),
    st.tuples(st.just("claim"), bot_index, st.integers(1, 3)),
    st.tuples(st.just("complete"), bot_index, pick, st.sampled_from(["latest", "oldest", None])),
    st.tuples(st.just("fail"), bot_index, pick, st.booleans()),
    st.tuples(st.just("heartbeat"), bot_index),
    st.tuples(st.just("advance"), st.sampled_from([1.0, 15.0, JOB_LEASE_TTL_S + 1, 130.0])),
    st.tuples(st.just("expire")),
    st.tuples(st.just("cancel"), pick),
    st.tuples(st.just("retry"), pick),
    st.tuples(st.just("restart"), bot_index),
)


@dataclass
class World:
    store: Store
    clock: FakeClock
    prefix: str  # names this example's bots and its operation
    bots: list[BotRecord] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)
    restarts: int = 0


async def check_job(store: Store, job_id: str) -> JobRecord:
    job = await store.get_job(job_id)
    assert job is not None
    attempts = await store.list_attempts(job_id)
    assert_no_overlapping_leases(attempts)
    live = [a for a in attempts if a.ended_at is None]
    assert job.attempt == max((a.attempt for a in attempts), default=0)
    if job.state == "running":
        assert len(live) == 1, (job, attempts)
        assert (live[0].attempt, live[0].bot_id) == (job.attempt, job.bot_id)
        assert job.lease_until is not None and job.lease_until == live[0].lease_until
    else:
        assert live == [], (job, attempts)
        assert job.lease_until is None
    if job.state in TERMINAL:
        assert job.finished_at is not None
    if job.state == "succeeded":
        assert job.result is not None
    return job


async def run_step(world: World, action: tuple[object, ...]) -> str | None:
    """Do one step; return the id of the job it touched, if any."""
    store, clock = world.store, world.clock
    kind = action[0]
    if kind == "submit":
        _, count, max_attempts = action
        assert isinstance(count, int) and isinstance(max_attempts, int)
        outcomes = await store.submit_jobs(
            [new_job(clock, op=world.prefix, max_attempts=max_attempts) for _ in range(count)]
        )
        world.jobs += [o.job.id for o in outcomes]
        return None
    if kind == "advance":
        assert isinstance(action[1], float)
        clock.advance(action[1])
        return None
    if kind == "expire":
        await store.expire_leases()
        return None
    if kind in ("cancel", "retry"):
        if not world.jobs:
            return None
        assert isinstance(action[1], int)
        job_id = world.jobs[action[1] % len(world.jobs)]
        verb = store.cancel_job if kind == "cancel" else store.retry_job
        await verb(job_id)
        return job_id
    assert isinstance(action[1], int)
    bot = world.bots[action[1]]
    if kind == "heartbeat":
        current = await store.get_bot(bot.id)
        assert current is not None
        await heartbeat(store, bot, current.running)
        return None
    if kind == "claim":
        assert isinstance(action[2], int)
        await store.claim_jobs(ClaimInput(bot.id, [world.prefix], action[2], JOB_LEASE_TTL_S))
        return None
    if kind == "restart":
        world.restarts += 1
        key = f"{world.prefix}/bot{action[1]}"
        world.bots[action[1]] = await register(
            store,
            clock,
            bot_key=key,
            instance_id=f"restart-{world.restarts}",
            capabilities=[world.prefix],
        )
        return None
    if not world.jobs:
        return None
    assert isinstance(action[2], int)
    job_id = world.jobs[action[2] % len(world.jobs)]
    held = sorted(a.attempt for a in await store.list_attempts(job_id) if a.bot_id == bot.id)
    if kind == "complete":
        choice = action[3]
        attempt = None if choice is None or not held else held[-1 if choice == "latest" else 0]
        await store.report(bot.id, [complete(job_id, attempt, by=bot.id)])
    else:
        assert isinstance(action[3], bool)
        await store.report(bot.id, [fail(job_id, retryable=action[3])])
    return job_id


async def count_by_listing(store: Store) -> dict[str, int]:
    counts: dict[str, int] = {}
    cursor: str | None = None
    while True:
        page, cursor = await store.list_jobs(JobQuery(None, None, 200, cursor))
        for job in page:
            counts[job.state] = counts.get(job.state, 0) + 1
        if cursor is None:
            return counts


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    budgets=st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=5),
    steps=st.lists(step, min_size=5, max_size=40),
)
async def test_random_histories_keep_one_live_lease_per_job(
    store: Store, clock: FakeClock, budgets: list[int], steps: Sequence[tuple[object, ...]]
) -> None:
    world = World(store, clock, prefix=f"example{next(_examples)}")
    for index in range(2):
        bot = await register(
            store,
            clock,
            bot_key=f"{world.prefix}/bot{index}",
            instance_id="first",
            capabilities=[world.prefix],
        )
        world.bots.append(bot)
    outcomes = await store.submit_jobs(
        [new_job(clock, op=world.prefix, max_attempts=n) for n in budgets]
    )
    world.jobs = [o.job.id for o in outcomes]
    for action in steps:
        touched = await run_step(world, action)
        if touched is not None:
            await check_job(store, touched)
    for job_id in world.jobs:
        await check_job(store, job_id)
    stats = await store.stats()
    listed = await count_by_listing(store)
    assert {s: n for s, n in stats.jobs_by_state.items() if n} == listed
