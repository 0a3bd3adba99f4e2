"""The wire contract of schedules (docs/protocol.md, "Schedules").

A schedule makes a job from its template (`job`, any submit body) at each due time:
by a cron expression read in a time zone, or every `every_s` seconds.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from botfleet.protocol.base import Struct, Timestamp
from botfleet.protocol.operator_calls import SubmitJob

ScheduleName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
]
ONE_YEAR_S = 31_536_000

# Submit fields a template cannot take: a schedule decides when its jobs run, and each
# due time makes a new job.
TEMPLATE_REFUSES = ("run_at", "idempotency_key")


class PutScheduleRequest(Struct, kw_only=True):
    """Exactly one of `cron` and `every_s`."""

    cron: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    every_s: Annotated[int, msgspec.Meta(ge=1, le=ONE_YEAR_S)] | None = None
    timezone: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] = "UTC"
    job: SubmitJob
    paused: bool = False


class ScheduleView(Struct, kw_only=True):
    name: str
    cron: str | None = None
    every_s: int | None = None
    timezone: str = "UTC"
    job: dict[str, Any]  # the template as it was put
    paused: bool = False
    next_run_at: Timestamp | None = None  # None while paused
    last_due_at: Timestamp | None = None  # the due time of the latest job made
    last_job_id: str | None = None
    created_at: Timestamp
    updated_at: Timestamp


class ScheduleList(Struct, kw_only=True):
    schedules: list[ScheduleView]


class ScheduleDeleted(Struct, kw_only=True):
    name: str
    deleted: bool = True
