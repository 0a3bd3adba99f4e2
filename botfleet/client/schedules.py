"""Schedules on the client side: the request of a put, and pausing as a put again."""

from __future__ import annotations

from typing import TypedDict

import msgspec

from botfleet.client.errors import NotFound
from botfleet.protocol import messages as m
from botfleet.protocol import schedules as wire


class ScheduleTiming(TypedDict, total=False):
    """When a schedule is due: exactly one of `cron` and `every_s`."""

    cron: str | None
    every_s: int | None
    timezone: str
    paused: bool


def put_request(
    job: m.SubmitJob,
    cron: str | None = None,
    every_s: int | None = None,
    timezone: str = "UTC",
    paused: bool = False,
) -> wire.PutScheduleRequest:
    return wire.PutScheduleRequest(
        cron=cron, every_s=every_s, timezone=timezone, job=job, paused=paused
    )


def repaused(
    schedules: list[wire.ScheduleView], name: str, paused: bool
) -> wire.PutScheduleRequest:
    """The request that puts schedule `name` again as it is, but (un)paused; `NotFound`
    when the list has no such schedule."""
    for view in schedules:
        if view.name == name:
            job = msgspec.convert(view.job, m.SubmitJob)
            return put_request(job, view.cron, view.every_s, view.timezone, paused)
    raise NotFound(404, "schedule_not_found", f"no schedule {name}")
