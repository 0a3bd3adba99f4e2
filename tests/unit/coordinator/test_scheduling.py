"""The schedule firer: it fires batch after batch, sleeps until the next due time (at
most its maximum), writes only when something is due, and survives a failing store."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from botfleet.clock import FakeClock
from coordinator.scheduling import ScheduleFirer
from coordinator.store.base import NewJob, StoreError
from coordinator.store.schedules import FiredSchedule, JobMaker, ScheduleRecord


def no_job(schedule: ScheduleRecord, due: datetime) -> NewJob | None:
    return None


class FakeStore:
    def __init__(self, clock: FakeClock, batches: list[int], next_due_s: float | None) -> None:
        self.clock = clock
        self.batches = batches
        self.next_due_s = next_due_s
        self.fail = False
        self.passes = 0

    async def fire_schedules(self, make_job: JobMaker, limit: int) -> list[FiredSchedule]:
        self.passes += 1
        if self.fail:
            raise StoreError("database away")
        count = self.batches.pop(0) if self.batches else 0
        now = self.clock.now()
        late = now - timedelta(seconds=2)
        return [FiredSchedule(f"s{i}", late, now, f"job{i}") for i in range(count)]

    async def next_schedule_due(self) -> datetime | None:
        if self.fail:
            raise StoreError("database away")
        if self.next_due_s is None:
            return None
        return self.clock.now() + timedelta(seconds=self.next_due_s)


def firer(store: FakeStore, clock: FakeClock, seen: list[FiredSchedule]) -> ScheduleFirer:
    return ScheduleFirer(store, clock, no_job, seen.append, max_wait_s=1.0, batch=2)  # type: ignore[arg-type]


async def test_fires_batches_until_one_comes_back_short() -> None:
    clock = FakeClock()
    seen: list[FiredSchedule] = []
    store = FakeStore(clock, [2, 2, 1], None)
    fired = await firer(store, clock, seen).fire_due()
    assert len(fired) == 5
    assert seen == fired


async def test_sleeps_until_the_next_due_time_at_most_its_maximum() -> None:
    clock = FakeClock()
    store = FakeStore(clock, [], 0.25)
    assert await firer(store, clock, []).wait_s() == 0.25
    store.next_due_s = 30.0
    assert await firer(store, clock, []).wait_s() == 1.0
    store.next_due_s = -3.0  # overdue
    assert await firer(store, clock, []).wait_s() == 0.0
    store.next_due_s = None
    assert await firer(store, clock, []).wait_s() == 1.0


async def test_a_failing_store_is_counted_and_waited_out() -> None:
    clock = FakeClock()
    store = FakeStore(clock, [1], 0.1)
    store.fail = True
    schedules = firer(store, clock, [])
    assert await schedules.fire_due() == []
    assert schedules.failures == 1
    assert await schedules.wait_s() == 1.0


async def run_briefly(schedules: ScheduleFirer) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(schedules.run(stop))
    await asyncio.sleep(0.05)
    stop.set()
    await task


async def test_runs_a_firing_pass_only_when_something_is_due() -> None:
    clock = FakeClock()
    idle = FakeStore(clock, [], 5.0)
    await run_briefly(ScheduleFirer(idle, clock, no_job, max_wait_s=0.01))  # type: ignore[arg-type]
    assert idle.passes == 0
    due = FakeStore(clock, [1], 0.0)
    seen: list[FiredSchedule] = []
    await run_briefly(ScheduleFirer(due, clock, no_job, seen.append, max_wait_s=0.01))  # type: ignore[arg-type]
    assert len(seen) == 1
    # Still due but nothing fired (another coordinator holds it): a pause, no busy loop.
    assert due.passes < 10
