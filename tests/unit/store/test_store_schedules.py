"""Schedules in the store, on every backend, with the fake clock: due times, exactly one
job per due time with two firers, catch-up after downtime, pause, resume and delete."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from botfleet.clock import FakeClock
from coordinator.store.base import Store
from tests.support.backends import StoreFactory
from tests.unit.store.schedule_support import cron, every, jobs_by_due, make_job


async def test_an_interval_schedule_fires_once_per_due_time(store: Store, clock: FakeClock) -> None:
    created = clock.now()
    record, new = await store.put_schedule(every("tick", 10))
    assert new
    assert record.next_run_at == created + timedelta(seconds=10)
    assert await store.fire_schedules(make_job, 10) == []  # nothing due yet
    clock.advance(10)
    (fired,) = await store.fire_schedules(make_job, 10)
    assert fired.due_at == created + timedelta(seconds=10)
    assert fired.job_id is not None
    assert await store.fire_schedules(make_job, 10) == []  # that due time is spent
    clock.advance(10)
    await store.fire_schedules(make_job, 10)
    (listed,) = await store.list_schedules()
    assert listed.next_run_at == created + timedelta(seconds=30)
    assert listed.last_due_at == created + timedelta(seconds=20)
    job = await store.get_job(listed.last_job_id or "")
    assert job is not None
    assert job.submitted_by == "schedule:tick"
    assert job.run_at == created + timedelta(seconds=20)
    assert await jobs_by_due(store, "tick") == {
        created + timedelta(seconds=10): 1,
        created + timedelta(seconds=20): 1,
    }


async def test_a_cron_schedule_is_due_by_its_expression_in_its_time_zone(
    store: Store, clock: FakeClock
) -> None:
    # 2026-01-19 10:00 UTC is 11:00 in Paris: "30 11 * * *" is due at 10:30 UTC.
    record, _ = await store.put_schedule(cron("daily", "30 11 * * *", "Europe/Paris"))
    assert record.next_run_at == datetime(2026, 1, 19, 10, 30, tzinfo=UTC)
    clock.advance(30 * 60)
    (fired,) = await store.fire_schedules(make_job, 10)
    assert fired.due_at == datetime(2026, 1, 19, 10, 30, tzinfo=UTC)
    (listed,) = await store.list_schedules()
    assert listed.next_run_at == datetime(2026, 1, 20, 10, 30, tzinfo=UTC)


async def test_two_firers_on_one_database_fire_each_due_time_once(
    store_factory: StoreFactory, clock: FakeClock
) -> None:
    first, second = store_factory(), store_factory()
    await first.open()
    await second.open()
    try:
        start = clock.now()
        for name in ("a", "b", "c"):
            await first.put_schedule(every(name, 1))
        for _ in range(5):
            clock.advance(1)
            await asyncio.gather(
                first.fire_schedules(make_job, 10), second.fire_schedules(make_job, 10)
            )
        for name in ("a", "b", "c"):
            assert await jobs_by_due(first, name) == {
                start + timedelta(seconds=n): 1 for n in range(1, 6)
            }
    finally:
        await first.close()
        await second.close()


async def test_due_times_missed_while_down_make_one_job(
    store_factory: StoreFactory, clock: FakeClock
) -> None:
    before = store_factory()
    await before.open()
    start = clock.now()
    await before.put_schedule(every("tick", 60))
    await before.close()
    clock.advance(60 * 10 + 30)  # ten due times pass with no coordinator up
    after = store_factory()
    await after.open()
    try:
        (fired,) = await after.fire_schedules(make_job, 10)
        assert fired.due_at == start + timedelta(seconds=60)
        assert await after.fire_schedules(make_job, 10) == []
        (listed,) = await after.list_schedules()
        # Back on the interval's beat, past the present: 11 minutes after the start.
        assert listed.next_run_at == start + timedelta(seconds=660)
        assert await jobs_by_due(after, "tick") == {start + timedelta(seconds=60): 1}
    finally:
        await after.close()


async def test_a_paused_schedule_makes_no_job_and_resumes_from_now(
    store: Store, clock: FakeClock
) -> None:
    await store.put_schedule(every("tick", 10))
    paused, new = await store.put_schedule(every("tick", 10, paused=True))
    assert not new
    assert paused.paused
    assert paused.next_run_at is None
    clock.advance(100)
    assert await store.fire_schedules(make_job, 10) == []
    resumed, _ = await store.put_schedule(every("tick", 10))
    assert resumed.next_run_at == clock.now() + timedelta(seconds=10)
    assert await jobs_by_due(store, "tick") == {}


async def test_putting_the_same_timing_again_keeps_the_next_due_time(
    store: Store, clock: FakeClock
) -> None:
    first, _ = await store.put_schedule(every("tick", 10))
    clock.advance(5)
    again, _ = await store.put_schedule(every("tick", 10))
    assert again.next_run_at == first.next_run_at
    changed, _ = await store.put_schedule(every("tick", 20))
    assert changed.next_run_at == clock.now() + timedelta(seconds=20)


async def test_a_deleted_schedule_fires_no_more_and_its_jobs_stay(
    store: Store, clock: FakeClock
) -> None:
    await store.put_schedule(every("tick", 1))
    clock.advance(1)
    (fired,) = await store.fire_schedules(make_job, 10)
    assert await store.delete_schedule("tick")
    assert not await store.delete_schedule("tick")
    assert await store.list_schedules() == []
    clock.advance(5)
    assert await store.fire_schedules(make_job, 10) == []
    assert await store.get_job(fired.job_id or "") is not None


async def test_a_template_that_makes_no_job_still_spends_its_due_time(
    store: Store, clock: FakeClock
) -> None:
    await store.put_schedule(every("tick", 1))
    clock.advance(1)
    (fired,) = await store.fire_schedules(lambda schedule, due: None, 10)
    assert fired.job_id is None
    assert await store.fire_schedules(make_job, 10) == []


async def test_firing_takes_at_most_the_limit_earliest_first(
    store: Store, clock: FakeClock
) -> None:
    await store.put_schedule(every("slow", 3))
    await store.put_schedule(every("fast", 1))
    clock.advance(3)
    assert [f.name for f in await store.fire_schedules(make_job, 1)] == ["fast"]
    assert [f.name for f in await store.fire_schedules(make_job, 10)] == ["slow"]
    assert await store.next_schedule_due() == clock.now() + timedelta(seconds=1)
