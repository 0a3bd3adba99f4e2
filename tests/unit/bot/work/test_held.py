"""Prefetched jobs in the bot: claimed beyond the free slots, held in claim order, started
as slots free up, given back after the hold time and at a drain, listed in heartbeats."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from bot.errors import NetworkError
from bot.jobs import Registry, load_plugins
from bot.settings import Settings
from bot.state import Job
from bot.testing import FakeCoordinator
from bot.work.prefetch import MIN_SAMPLES
from bot.work.scheduler import Scheduler
from botfleet.clock import FakeClock
from botfleet.protocol import messages as m
from tests.unit.bot.conftest import GENEROUS_S, MakeScheduler, RecordingHooks, eventually

PREFETCH = [m.FEATURE_PREFETCH, m.FEATURE_BATCH_REPORT]


class Gate:
    """A handler that waits until the test opens the gate."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.started: list[str] = []

    async def __call__(self, job: Job) -> dict[str, Any]:
        self.started.append(job.id)
        await self.open.wait()
        return {}


def _scheduler(
    make_scheduler: MakeScheduler,
    fake: FakeCoordinator,
    tmp_path: Any,
    *,
    features: list[str] = PREFETCH,
    registry: Registry | None = None,
    hooks: Any = None,
    **settings: Any,
) -> Scheduler:
    settings.setdefault("claim_hedge_ms", 0)
    return make_scheduler(
        fake,
        features=features,
        clock=FakeClock(),
        settings=Settings(state_dir=tmp_path, **settings),
        registry=registry,
        hooks=hooks,
    )


def _seen_short(scheduler: Scheduler, round_trip_s: float = 0.002) -> None:
    """As if the bot had run a few 100 us jobs of each operation over 2 ms claim round
    trips."""
    for op in scheduler.session.claimable():
        for _ in range(MIN_SAMPLES):
            scheduler.runner.recent.observe(op, 0.0001)
    scheduler.claims.round_trip.add(round_trip_s)


async def _run(loops: list[Any], predicate: Any, what: str) -> None:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(loop(stop)) for loop in loops]
    try:
        await eventually(predicate, what)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), GENEROUS_S)


def _succeeded(scheduler: Scheduler, op: str = "sum") -> int:
    return scheduler.finished[(op, "succeeded")]


async def test_short_jobs_come_in_few_claims(make_scheduler: MakeScheduler, tmp_path: Any) -> None:
    fake = FakeCoordinator()
    for n in range(200):
        fake.add_job("sum", {"a": n, "b": 1})
    scheduler = _scheduler(make_scheduler, fake, tmp_path)
    _seen_short(scheduler)
    await _run([scheduler.claim_loop], lambda: _succeeded(scheduler) == 200, "every job ran")
    first = fake.requests("claim")[0]
    assert (first.limit, first.prefetch) == (82, 80)
    assert fake.count("release") == 0
    # (The fake clock measures no round trip: the later buffers shrink to a job a slot.)


class CountingCoordinator(FakeCoordinator):
    """Counts the claims that handed jobs out (the fake clock lets empty ones spin)."""

    def __init__(self) -> None:
        super().__init__()
        self.fruitful = 0

    async def claim(self, request: m.ClaimRequest) -> m.ClaimResponse:
        answer = await super().claim(request)
        self.fruitful += bool(answer.jobs)
        return answer


async def test_a_fixed_prefetch_takes_few_claims(
    make_scheduler: MakeScheduler, tmp_path: Any
) -> None:
    fake = CountingCoordinator()
    for n in range(200):
        fake.add_job("sum", {"a": n, "b": 1})
    scheduler = _scheduler(make_scheduler, fake, tmp_path, prefetch=40)
    await _run([scheduler.claim_loop], lambda: _succeeded(scheduler) == 200, "every job ran")
    # 42 at first, then 20 each time the buffer is half empty; without prefetch, two jobs
    # a claim: a hundred claims.
    assert fake.fruitful <= 10
    assert fake.count("release") == 0


async def test_unknown_operations_are_claimed_for_the_free_slots_first(
    make_scheduler: MakeScheduler, tmp_path: Any
) -> None:
    fake = FakeCoordinator()
    for n in range(40):
        fake.add_job("sum", {"a": n, "b": 1})
    scheduler = _scheduler(make_scheduler, fake, tmp_path)
    await _run([scheduler.claim_loop], lambda: _succeeded(scheduler) == 40, "every job ran")
    claims = fake.requests("claim")
    first = claims[0]
    assert (first.limit, first.prefetch) == (2, msgspec.UNSET)
    # Once a few jobs of the operation ran here, and were short, claims go beyond the
    # slots: for it alone (`subtract`, never seen, may be long) while no slot is free.
    beyond = [claim for claim in claims if claim.prefetch]
    assert beyond and all(claim.operations == ["sum"] for claim in beyond)
    assert all(claim.wait_ms == 0 for claim in beyond)  # for the buffer: no long-poll


async def test_without_the_feature_claims_are_the_seeds(
    make_scheduler: MakeScheduler, tmp_path: Any
) -> None:
    fake = FakeCoordinator()
    for n in range(20):
        fake.add_job("sum", {"a": n, "b": 1})
    scheduler = _scheduler(make_scheduler, fake, tmp_path, features=[m.FEATURE_BATCH_REPORT])
    _seen_short(scheduler)
    await _run([scheduler.claim_loop], lambda: _succeeded(scheduler) == 20, "every job ran")
    assert {claim.limit for claim in fake.requests("claim")} == {2}
    assert all(claim.prefetch is msgspec.UNSET for claim in fake.requests("claim"))


async def test_bot_prefetch_zero_claims_no_more_than_the_free_slots(
    make_scheduler: MakeScheduler, tmp_path: Any
) -> None:
    fake = FakeCoordinator()
    for n in range(20):
        fake.add_job("sum", {"a": n, "b": 1})
    scheduler = _scheduler(make_scheduler, fake, tmp_path, prefetch=0)
    _seen_short(scheduler)
    await _run([scheduler.claim_loop], lambda: _succeeded(scheduler) == 20, "every job ran")
    assert {claim.limit for claim in fake.requests("claim")} == {2}


async def test_held_jobs_not_started_within_the_hold_time_go_back(
    make_scheduler: MakeScheduler, tmp_path: Any
) -> None:
    gate = Gate()
    registry = Registry()
    registry.register("slow", gate)
    fake = FakeCoordinator()
    ids = [fake.add_job("slow") for _ in range(4)]
    scheduler = _scheduler(make_scheduler, fake, tmp_path, registry=registry, prefetch=2)
    await _run(
        [scheduler.claim_loop, scheduler.hold_loop],
        lambda: fake.count("release") == 1,
        "the held jobs to go back",
    )
    (claim,) = fake.requests("claim")  # no refill: both slots hold jobs running long
    assert (claim.limit, claim.prefetch) == (4, 2)
    assert gate.started == ids[:2]
    (release,) = fake.requests("release")
    assert [(item.job_id, item.attempt) for item in release.jobs] == [(ids[2], 1), (ids[3], 1)]
    assert fake.queue == ids[2:] and fake.jobs[ids[2]].attempt == 0  # back, uncharged
    assert scheduler.held.ids() == [] and scheduler.held.released == 2
    # Not charged, not lost: the first two run on.
    gate.open.set()
    await eventually(lambda: _succeeded(scheduler, "slow") == 2, "the running jobs end")


async def test_held_jobs_start_in_order_as_slots_free_up(
    make_scheduler: MakeScheduler, tmp_path: Any
) -> None:
    gate = Gate()
    fake = FakeCoordinator()
    registry = load_plugins(Registry(), entry_points=())
    registry.register("slow", gate)
    scheduler = _scheduler(make_scheduler, fake, tmp_path, registry=registry)
    sink: list[m.ReportItem] = []
    jobs = [Job(f"job_{n}", "slow", {}) for n in range(5)]
    tasks = scheduler.held.hold(jobs, sink.append)
    assert len(tasks) == 2 and scheduler.held.ids() == ["job_2", "job_3", "job_4"]
    gate.open.set()
    await eventually(lambda: len(sink) == 5, "every job ran")
    assert gate.started == [job.id for job in jobs]
    assert scheduler.held.ids() == []


async def test_held_jobs_do_not_start_while_work_is_not_allowed(
    make_scheduler: MakeScheduler, tmp_path: Any
) -> None:
    hooks = RecordingHooks()
    hooks.allowed = False  # quarantined, draining, the network down…
    fake = FakeCoordinator()
    scheduler = _scheduler(make_scheduler, fake, tmp_path, hooks=hooks)
    assert scheduler.held.hold([Job("job_1", "sum", {"a": 1, "b": 1})], None) == []
    assert scheduler.held.ids() == ["job_1"]
    hooks.allowed = True
    assert len(scheduler.held.feed()) == 1


async def test_a_drain_gives_every_held_job_back(
    make_scheduler: MakeScheduler, tmp_path: Any
) -> None:
    fake = FakeCoordinator()
    hooks = RecordingHooks()
    hooks.allowed = False
    scheduler = _scheduler(make_scheduler, fake, tmp_path, hooks=hooks)
    ids = [fake.add_job("sum", {"a": 1, "b": 1}) for _ in range(3)]
    answer = await fake.claim(m.ClaimRequest(bot_id="bot_fake", operations=["sum"], limit=3))
    scheduler.held.hold([Job.from_claimed(job) for job in answer.jobs], None)
    assert await scheduler.release_held("drained") == 3
    (release,) = fake.requests("release")
    assert [item.job_id for item in release.jobs] == ids
    assert fake.queue == ids and scheduler.held.ids() == []
    assert await scheduler.release_held("drained") == 0  # nothing left: no call
    assert fake.count("release") == 1


async def test_a_drain_whose_release_cannot_be_sent_leaves_the_jobs_to_their_leases(
    make_scheduler: MakeScheduler, tmp_path: Any
) -> None:
    fake = FakeCoordinator()
    hooks = RecordingHooks()
    hooks.allowed = False
    scheduler = _scheduler(make_scheduler, fake, tmp_path, hooks=hooks)
    scheduler.held.hold([Job("job_1", "sum", {}), Job("job_2", "sum", {})], None)
    fake.fail_next("release", NetworkError("down"))
    assert await scheduler.release_held("drained") == 0
    assert fake.count("release") == 1  # once: a drain does not wait on the network
    assert scheduler.held.ids() == []


async def test_a_release_that_cannot_be_sent_keeps_the_jobs(
    make_scheduler: MakeScheduler, tmp_path: Any
) -> None:
    fake = FakeCoordinator()
    hooks = RecordingHooks()
    hooks.allowed = False
    scheduler = _scheduler(make_scheduler, fake, tmp_path, hooks=hooks, prefetch_hold_ms=100)
    fake.add_job("sum", {"a": 1, "b": 1})
    answer = await fake.claim(m.ClaimRequest(bot_id="bot_fake", operations=["sum"], limit=1))
    scheduler.held.hold([Job.from_claimed(job) for job in answer.jobs], None)
    fake.fail_next("release", NetworkError("down"))
    await _run([scheduler.hold_loop], lambda: fake.count("release") == 2, "a second try")
    assert fake.jobs["job_1"].state == "queued"
    assert scheduler.held.ids() == []


async def test_a_cancelled_held_job_is_dropped(
    make_scheduler: MakeScheduler, tmp_path: Any
) -> None:
    hooks = RecordingHooks()
    hooks.allowed = False
    scheduler = _scheduler(make_scheduler, FakeCoordinator(), tmp_path, hooks=hooks)
    scheduler.held.hold([Job("job_1", "sum", {}), Job("job_2", "sum", {})], None)
    assert scheduler.cancel("job_1") is True
    assert scheduler.held.ids() == ["job_2"]
    assert scheduler.cancel("job_9") is False
