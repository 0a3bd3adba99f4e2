"""The schedule verbs of the PostgreSQL store, each inside one transaction (`Tx`).

Firing locks the due rows (SKIP LOCKED: rows another coordinator is firing are left to
it) and moves each past the present in the transaction that inserts its job, so every
due time makes one job however many coordinators fire at once.
"""

from __future__ import annotations

from datetime import datetime

from coordinator.store.postgres.jobs import submit_jobs
from coordinator.store.postgres.rows import DECODE
from coordinator.store.postgres.tx import Tx
from coordinator.store.schedules import (
    FiredSchedule,
    JobMaker,
    ScheduleRecord,
    ScheduleSpec,
    due_after,
    planned_next_run,
    schedule_from_row,
)


async def put_schedule(tx: Tx, spec: ScheduleSpec) -> tuple[ScheduleRecord, bool]:
    """The schedule as stored, and whether it is new."""
    found = await tx.fetchrow("get_schedule", spec.name)
    existing = None if found is None else schedule_from_row(found, DECODE)
    timing = spec.timing
    row = await tx.fetchrow(
        "put_schedule", spec.name, timing.cron, timing.every_s, timing.timezone, spec.job,
        spec.paused, planned_next_run(existing, spec, tx.now), tx.now,
    )  # fmt: skip
    return schedule_from_row(row, DECODE), existing is None


async def delete_schedule(tx: Tx, name: str) -> bool:
    return await tx.fetchrow("delete_schedule", name) is not None


async def list_schedules(tx: Tx) -> list[ScheduleRecord]:
    return [schedule_from_row(row, DECODE) for row in await tx.fetch("list_schedules")]


async def next_schedule_due(tx: Tx) -> datetime | None:
    value: datetime | None = await tx.fetchval("next_schedule_due")
    return value


async def fire_schedules(tx: Tx, make_job: JobMaker, limit: int) -> list[FiredSchedule]:
    fired: list[FiredSchedule] = []
    for row in await tx.fetch("due_schedules", tx.now, limit):
        schedule = schedule_from_row(row, DECODE)
        due = schedule.next_run_at
        assert due is not None  # due_schedules picks scheduled rows only
        following = due_after(schedule.timing, due, tx.now)
        if await tx.fetchrow("advance_schedule", schedule.name, due, following) is None:
            continue
        job = make_job(schedule, due)
        job_id = None
        if job is not None:
            (outcome,) = await submit_jobs(tx, [job])
            job_id = outcome.job.id
            await tx.execute("set_schedule_job", schedule.name, job_id)
        fired.append(FiredSchedule(schedule.name, due, tx.now, job_id))
    return fired
