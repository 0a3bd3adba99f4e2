"""Random dependency graphs under random claims, reports, cancellations and expiries, on
every backend: no job starts before all its dependencies succeeded, a failed or
cancelled dependency leaves no dependant waiting, and every job ends."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from botfleet.clock import FakeClock
from coordinator.store.base import BotRecord, ClaimInput, JobRecord, Store
from tests.unit.store.support import (
    JOB_LEASE_TTL_S,
    complete,
    fail,
    heartbeat,
    new_job,
    register,
)

TERMINAL = {"succeeded", "failed", "cancelled"}
UNSUCCESSFUL = {"failed", "cancelled"}

_examples = itertools.count()


@st.composite
def graphs(draw: st.DrawFn) -> list[tuple[int, list[int]]]:
    """(max_attempts, earlier jobs it waits for) per job: always a DAG."""
    size = draw(st.integers(min_value=2, max_value=8))
    return [
        (
            draw(st.integers(min_value=1, max_value=2)),
            sorted(draw(st.sets(st.integers(min_value=0, max_value=index - 1), max_size=3)))
            if index
            else [],
        )
        for index in range(size)
    ]


pick = st.integers(min_value=0, max_value=1000)
step = st.one_of(
    st.tuples(st.just("claim"), st.integers(1, 3)),
    st.tuples(st.just("complete"), pick),
    st.tuples(st.just("fail"), pick, st.booleans()),
    st.tuples(st.just("cancel"), pick),
    st.tuples(st.just("expire")),
)


@dataclass
class World:
    store: Store
    clock: FakeClock
    op: str
    bot: BotRecord
    ids: list[str] = field(default_factory=list)
    after: dict[str, list[str]] = field(default_factory=dict)

    async def jobs(self) -> dict[str, JobRecord]:
        found: dict[str, JobRecord] = {}
        for job_id in self.ids:
            job = await self.store.get_job(job_id)
            assert job is not None
            found[job_id] = job
        return found

    async def claim(self, limit: int) -> None:
        claim = ClaimInput(self.bot.id, [self.op], limit, JOB_LEASE_TTL_S)
        claimed = await self.store.claim_jobs(claim)
        assert claimed is not None
        jobs = await self.jobs()
        for job in claimed:
            states = [jobs[after].state for after in self.after[job.id]]
            assert all(state == "succeeded" for state in states), (job.id, states)


async def check(world: World) -> None:
    jobs = await world.jobs()
    for job_id, job in jobs.items():
        states = [jobs[after].state for after in world.after[job_id]]
        if job.attempt > 0:  # it started: every dependency had succeeded, and stays so
            assert all(state == "succeeded" for state in states), (job_id, states)
        if any(state in UNSUCCESSFUL for state in states):
            assert job.state in TERMINAL, (job_id, job.state, states)
        elif job.state == "queued":
            assert job.waiting_on == sum(state != "succeeded" for state in states)


async def run_step(world: World, action: tuple[object, ...]) -> None:
    store, kind = world.store, action[0]
    if kind == "claim":
        assert isinstance(action[1], int)
        await world.claim(action[1])
        return
    if kind == "expire":
        world.clock.advance(JOB_LEASE_TTL_S + 1)
        await heartbeat(store, world.bot)  # the bot lives on; its jobs' leases ran out
        await store.expire_leases()
        return
    assert isinstance(action[1], int)
    job_id = world.ids[action[1] % len(world.ids)]
    if kind == "cancel":
        await store.cancel_job(job_id)
    elif kind == "complete":
        await store.report(world.bot.id, [complete(job_id, by="property")])
    else:
        assert isinstance(action[2], bool)
        await store.report(world.bot.id, [fail(job_id, retryable=action[2], retry_after_ms=0)])


async def run_to_the_end(world: World) -> None:
    """Claim and complete whatever is claimable until nothing is left to do."""
    for _ in range(2 * len(world.ids) + 2):
        jobs = await world.jobs()
        if all(job.state in TERMINAL for job in jobs.values()):
            return
        await world.claim(len(world.ids))
        running = [job_id for job_id, job in (await world.jobs()).items() if job.state == "running"]
        await world.store.report(world.bot.id, [complete(job_id) for job_id in running])
        await check(world)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(graph=graphs(), steps=st.lists(step, max_size=30))
async def test_random_graphs_start_in_order_and_all_end(
    store: Store,
    clock: FakeClock,
    graph: list[tuple[int, list[int]]],
    steps: Sequence[tuple[object, ...]],
) -> None:
    op = f"graph{next(_examples)}"
    bot = await register(store, clock, bot_key=f"{op}/bot", capabilities=[op], max_concurrency=100)
    outcomes = await store.submit_jobs(
        [
            new_job(clock, op=op, max_attempts=budget, after=tuple(f"#{i}" for i in after))
            for budget, after in graph
        ]
    )
    world = World(store, clock, op, bot, ids=[outcome.job.id for outcome in outcomes])
    world.after = {
        job_id: [world.ids[i] for i in after]
        for job_id, (_, after) in zip(world.ids, graph, strict=True)
    }
    await check(world)
    for action in steps:
        await run_step(world, action)
        await check(world)
    await run_to_the_end(world)
    jobs = await world.jobs()
    assert all(job.state in TERMINAL for job in jobs.values()), jobs
