"""The schedule verbs of the SQLite store, each inside one transaction (`Tx`).

Every write transaction holds SQLite's one write lock from its start, so reading the
due schedules and moving them on cannot interleave with another process doing the same.
"""

from __future__ import annotations

from datetime import datetime

from coordinator.store.schedules import (
    FiredSchedule,
    JobMaker,
    ScheduleRecord,
    ScheduleSpec,
    due_after,
    planned_next_run,
    schedule_from_row,
)
from coordinator.store.sqlite.jobs import submit_jobs
from coordinator.store.sqlite.rows import DECODE, dump_json, from_us, maybe_from_us, maybe_to_us
from coordinator.store.sqlite.tx import Tx


def put_schedule(tx: Tx, spec: ScheduleSpec) -> tuple[ScheduleRecord, bool]:
    """The schedule as stored, and whether it is new."""
    found = tx.one("get_schedule", {"name": spec.name})
    existing = None if found is None else schedule_from_row(found, DECODE)
    next_run_at = planned_next_run(existing, spec, from_us(tx.now))
    row = tx.one(
        "put_schedule",
        {
            "name": spec.name,
            "cron": spec.timing.cron,
            "every_s": spec.timing.every_s,
            "timezone": spec.timing.timezone,
            "job": dump_json(spec.job),
            "paused": spec.paused,
            "next_run_at": maybe_to_us(next_run_at),
            "now": tx.now,
        },
    )
    assert row is not None  # an upsert returns its row
    return schedule_from_row(row, DECODE), existing is None


def delete_schedule(tx: Tx, name: str) -> bool:
    return tx.one("delete_schedule", {"name": name}) is not None


def list_schedules(tx: Tx) -> list[ScheduleRecord]:
    return [schedule_from_row(row, DECODE) for row in tx.all("list_schedules")]


def next_schedule_due(tx: Tx) -> datetime | None:
    row = tx.one("next_schedule_due")
    return None if row is None else maybe_from_us(row["next_run_at"])


def fire_schedules(tx: Tx, make_job: JobMaker, limit: int) -> list[FiredSchedule]:
    now = from_us(tx.now)
    fired: list[FiredSchedule] = []
    for row in tx.all("due_schedules", {"now": tx.now, "limit": limit}):
        schedule = schedule_from_row(row, DECODE)
        due = schedule.next_run_at
        assert due is not None  # due_schedules picks scheduled rows only
        following = due_after(schedule.timing, due, now)
        params = {
            "name": schedule.name,
            "due": row["next_run_at"],
            "next_run_at": maybe_to_us(following),
        }
        if tx.one("advance_schedule", params) is None:
            continue
        job = make_job(schedule, due)
        job_id = None
        if job is not None:
            (outcome,) = submit_jobs(tx, [job])
            job_id = outcome.job.id
            tx.run("set_schedule_job", {"name": schedule.name, "job_id": job_id})
        fired.append(FiredSchedule(schedule.name, due, now, job_id))
    return fired
