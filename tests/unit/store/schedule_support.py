"""Helpers for the schedule tests of the store: specs, a job maker, the jobs made."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from coordinator.store.base import JobQuery, NewJob, Store
from coordinator.store.schedules import ScheduleRecord, ScheduleSpec, Timing


def every(name: str, seconds: int, paused: bool = False) -> ScheduleSpec:
    return ScheduleSpec(name, Timing(every_s=seconds), {"op": "tick"}, paused)


def cron(name: str, expression: str, timezone: str = "UTC") -> ScheduleSpec:
    return ScheduleSpec(name, Timing(cron=expression, timezone=timezone), {"op": "tick"})


def make_job(schedule: ScheduleRecord, due: datetime) -> NewJob:
    """The job of a due time: its run_at is the due time, so tests can count them."""
    return NewJob(
        op=schedule.job["op"],
        payload={"due": due.isoformat()},
        run_at=due,
        submitted_by=f"schedule:{schedule.name}",
    )


async def jobs_by_due(store: Store, name: str) -> Counter[datetime]:
    """How many jobs the schedule `name` made for each due time."""
    jobs, _ = await store.list_jobs(JobQuery(limit=1000, submitted_by=f"schedule:{name}"))
    return Counter(job.run_at for job in jobs)
