"""Schedules as the store keeps them, and their due times (for every backend).

A schedule's due times come from a cron expression read in its time zone (`cronsim`)
or from a fixed interval counted from when it was created or last changed. The store
keeps only the NEXT due time; firing moves it past the present in the transaction
that inserts the job, so a due time makes one job whichever process fires it, and the
times missed while no coordinator ran make one job (for the earliest of them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from coordinator.store.records import NewJob
from coordinator.store.rows import Decode

DEFAULT_TIMEZONE = "UTC"
FIRE_BATCH = 100  # schedules fired per transaction at most
_ANY_MOMENT = datetime(2026, 1, 1, tzinfo=UTC)  # an expression is checked from here


class ScheduleInvalid(ValueError):
    """A schedule's timing that cannot be used; `field` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"`{field}`: {message}")
        self.field = field


@dataclass(frozen=True, slots=True)
class Timing:
    """When a schedule is due: exactly one of `cron` and `every_s`."""

    cron: str | None = None
    every_s: int | None = None
    timezone: str = DEFAULT_TIMEZONE


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """What a `PUT /v1/schedules/{name}` asks for."""

    name: str
    timing: Timing
    job: dict[str, Any]  # the job template: a submit body (wire form)
    paused: bool = False


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    name: str
    timing: Timing
    job: dict[str, Any]
    paused: bool
    created_at: datetime
    updated_at: datetime
    next_run_at: datetime | None = None  # None while paused
    last_due_at: datetime | None = None
    last_job_id: str | None = None


@dataclass(frozen=True, slots=True)
class FiredSchedule:
    """One due time fired: the job it made (None when its template no longer makes one)."""

    name: str
    due_at: datetime
    fired_at: datetime
    job_id: str | None


JobMaker = Callable[[ScheduleRecord, datetime], NewJob | None]
"""The job a schedule makes for a due time; None when its template cannot make one
(the due time passes without a job)."""


def check_timing(timing: Timing) -> None:
    """ScheduleInvalid naming the field when the timing cannot be used."""
    if (timing.cron is None) == (timing.every_s is None):
        raise ScheduleInvalid("cron", "give exactly one of `cron` and `every_s`")
    zone = _zone(timing.timezone)
    if timing.every_s is not None and timing.every_s < 1:
        raise ScheduleInvalid("every_s", f"must be at least 1, got {timing.every_s}")
    if timing.cron is not None:
        try:
            next(CronSim(timing.cron, _ANY_MOMENT.astimezone(zone)))
        except (CronSimError, StopIteration) as error:
            message = f"{timing.cron!r} is not a cron expression: {error}"
            raise ScheduleInvalid("cron", message) from None


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleInvalid("timezone", f"{name!r} is not a known time zone") from None


def first_due(timing: Timing, now: datetime) -> datetime:
    """The first due time of a schedule created (or changed, or resumed) at `now`."""
    if timing.every_s is not None:
        return now + timedelta(seconds=timing.every_s)
    return _cron_after(timing, now)


def due_after(timing: Timing, due: datetime, now: datetime) -> datetime:
    """The next due time after firing `due` at `now` (now >= due): past the present,
    skipping the due times missed in between (they made the one job of `due`)."""
    if timing.every_s is not None:
        every = timedelta(seconds=timing.every_s)
        return due + every * ((now - due) // every + 1)
    return _cron_after(timing, now)


def _cron_after(timing: Timing, moment: datetime) -> datetime:
    if timing.cron is None:
        raise ScheduleInvalid("cron", "a cron schedule without an expression")
    zone = _zone(timing.timezone)
    return next(CronSim(timing.cron, moment.astimezone(zone))).astimezone(UTC)


def planned_next_run(
    existing: ScheduleRecord | None, spec: ScheduleSpec, now: datetime
) -> datetime | None:
    """next_run_at after a PUT: kept when a running schedule keeps its timing (putting
    the same schedule again shifts nothing), from `now` otherwise; None when paused."""
    if spec.paused:
        return None
    if existing is not None and existing.next_run_at is not None and existing.timing == spec.timing:
        return existing.next_run_at
    return first_due(spec.timing, now)


def schedule_from_row(row: Any, decode: Decode) -> ScheduleRecord:
    return ScheduleRecord(
        name=row["name"],
        timing=Timing(cron=row["cron"], every_s=row["every_s"], timezone=row["timezone"]),
        job=decode.json(row["job"]),
        paused=bool(row["paused"]),
        created_at=decode.moment(row["created_at"]),
        updated_at=decode.moment(row["updated_at"]),
        next_run_at=decode.maybe_moment(row["next_run_at"]),
        last_due_at=decode.maybe_moment(row["last_due_at"]),
        last_job_id=row["last_job_id"],
    )
