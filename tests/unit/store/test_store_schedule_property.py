"""A property of firing, on every backend: over random clock advances, restarts (a new
store on the same database) and two firers, each due time makes exactly one job, and
due times missed between two firings make one job (the earliest's), never more."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from botfleet.clock import FakeClock
from coordinator.store.base import Store
from coordinator.store.schedules import ScheduleSpec, Timing
from tests.support.backends import StoreFactory
from tests.unit.store.schedule_support import jobs_by_due, make_job

CRON_STEP_S = 3
_examples = itertools.count()

step = st.one_of(
    st.tuples(st.just("advance"), st.floats(min_value=0.0, max_value=7.0)),
    st.tuples(st.just("fire"), st.sampled_from(["a", "b", "both"])),
    st.tuples(st.just("restart"), st.sampled_from(["a", "b"])),
    st.tuples(st.just("put again"), st.sampled_from(["a", "b"])),
)


class Model:
    """The due times a schedule should have fired, computed by stepping, not by formula."""

    def __init__(self, first: datetime, step_s: int) -> None:
        self.next_due = first
        self.step = timedelta(seconds=step_s)
        self.fired: list[datetime] = []

    def fire(self, now: datetime) -> None:
        if self.next_due > now:
            return
        self.fired.append(self.next_due)
        while self.next_due <= now:
            self.next_due += self.step


async def fire_all(store: Store) -> None:
    """Fire batch after batch until one comes back short, as the firer does."""
    while len(await store.fire_schedules(make_job, 10)) == 10:
        pass


def first_cron_due(now: datetime) -> datetime:
    """`*/3 * * * * *`: the next second divisible by 3 after `now` (minutes are 60 s)."""
    start = now.replace(second=0, microsecond=0)
    elapsed = (now - start).total_seconds()
    return start + timedelta(seconds=(int(elapsed // CRON_STEP_S) + 1) * CRON_STEP_S)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(every_s=st.integers(min_value=1, max_value=5), steps=st.lists(step, max_size=30))
async def test_each_due_time_makes_exactly_one_job(
    store_factory: StoreFactory,
    clock: FakeClock,
    every_s: int,
    steps: Sequence[tuple[str, object]],
) -> None:
    prefix = f"example{next(_examples)}"
    specs = [
        ScheduleSpec(f"{prefix}-every", Timing(every_s=every_s), {"op": "tick"}),
        ScheduleSpec(f"{prefix}-cron", Timing(cron=f"*/{CRON_STEP_S} * * * * *"), {"op": "tick"}),
    ]
    stores: dict[str, Store] = {"a": store_factory(), "b": store_factory()}
    for store in stores.values():
        await store.open()
    try:
        now = clock.now()
        for spec in specs:
            await stores["a"].put_schedule(spec)
        models = [
            Model(now + timedelta(seconds=every_s), every_s),
            Model(first_cron_due(now), CRON_STEP_S),
        ]
        for action, argument in steps:
            if action == "advance":
                assert isinstance(argument, float)
                clock.advance(argument)
            elif action == "fire":
                firers = ["a", "b"] if argument == "both" else [str(argument)]
                await asyncio.gather(*(fire_all(stores[f]) for f in firers))
                for model in models:
                    model.fire(clock.now())
            elif action == "restart":
                await stores[str(argument)].close()
                stores[str(argument)] = store_factory()
                await stores[str(argument)].open()
            else:  # the same schedule put again keeps its next due time
                for spec in specs:
                    await stores[str(argument)].put_schedule(spec)
        listed = {s.name: s for s in await stores["a"].list_schedules()}
        for spec, model in zip(specs, models, strict=True):
            assert await jobs_by_due(stores["a"], spec.name) == Counter(model.fired)
            assert listed[spec.name].next_run_at == model.next_due
    finally:
        for spec in specs:  # the database outlives the example: leave nothing due
            await stores["a"].delete_schedule(spec.name)
        for store in stores.values():
            await store.close()
