"""Schedules: create or replace, list and delete (operators); the jobs they make.

A schedule's `job` is a submit body, checked here as `POST /v1/jobs` would check it (and
strictly: a field submit does not know is refused, naming it), and stored as it came,
so a job made later takes every field it gave.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import msgspec
from aiohttp import web

from botfleet.clock import to_rfc3339
from botfleet.protocol import ProtocolError, decode
from botfleet.protocol import messages as m
from botfleet.protocol import schedules as wire
from botfleet.tracing import Tracer
from coordinator.context import context
from coordinator.errors import InvalidBody, NotFound
from coordinator.routes.common import read_body, respond

# The submit route's own conversion: a template takes every field a submit takes.
from coordinator.routes.jobs import _new_job as job_from_submit
from coordinator.store.base import NewJob
from coordinator.store.schedules import (
    JobMaker,
    ScheduleInvalid,
    ScheduleRecord,
    ScheduleSpec,
    Timing,
    check_timing,
)

log = logging.getLogger(__name__)

SUBMIT_FIELDS = frozenset(field.encode_name for field in msgspec.structs.fields(m.SubmitJob))


def setup(router: web.UrlDispatcher) -> None:
    router.add_put("/v1/schedules/{name}", put_schedule)
    router.add_get("/v1/schedules", list_schedules)
    router.add_delete("/v1/schedules/{name}", delete_schedule)


def submitter(name: str) -> str:
    """`submitted_by` of the jobs a schedule makes."""
    return f"schedule:{name}"


async def put_schedule(request: web.Request) -> web.Response:
    ctx = context(request)
    name = _name(request)
    body = await read_body(request, wire.PutScheduleRequest)
    template = _template(await request.read())
    timing = Timing(cron=body.cron, every_s=body.every_s, timezone=body.timezone)
    try:
        check_timing(timing)
    except ScheduleInvalid as error:
        raise InvalidBody(f"{error} - at `$.{error.field}`") from None
    # Made once now, so a template that could not make a job is refused today.
    job_from_submit(body.job, ctx.clock.now(), "$.job", ctx.tracer, submitter(name))
    record, created = await ctx.store.put_schedule(
        ScheduleSpec(name, timing, template, body.paused)
    )
    log.info("schedule %s %s", name, "created" if created else "replaced")
    return respond(schedule_view(record))


async def list_schedules(request: web.Request) -> web.Response:
    schedules = await context(request).store.list_schedules()
    return respond(wire.ScheduleList(schedules=[schedule_view(s) for s in schedules]))


async def delete_schedule(request: web.Request) -> web.Response:
    name = _name(request)
    if not await context(request).store.delete_schedule(name):
        raise NotFound(f"no schedule {name}", code="schedule_not_found")
    log.info("schedule %s deleted", name)
    return respond(wire.ScheduleDeleted(name=name))


def template_jobs(tracer: Tracer) -> JobMaker:
    """What a due schedule makes: its template as a submit at the due time, run at once
    (or `delay_ms` after the due time), submitted by `schedule:NAME`."""

    def make(schedule: ScheduleRecord, due: datetime) -> NewJob | None:
        try:
            body = msgspec.convert(schedule.job, m.SubmitJob)
            return job_from_submit(body, due, "$.job", tracer, submitter(schedule.name))
        except (msgspec.ValidationError, InvalidBody) as error:
            log.error("schedule %s: its job template makes no job: %s", schedule.name, error)
            return None

    return make


def schedule_view(record: ScheduleRecord) -> wire.ScheduleView:
    return wire.ScheduleView(
        name=record.name,
        cron=record.timing.cron,
        every_s=record.timing.every_s,
        timezone=record.timing.timezone,
        job=record.job,
        paused=record.paused,
        next_run_at=_time(record.next_run_at),
        last_due_at=_time(record.last_due_at),
        last_job_id=record.last_job_id,
        created_at=to_rfc3339(record.created_at),
        updated_at=to_rfc3339(record.updated_at),
    )


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else to_rfc3339(moment)


def _name(request: web.Request) -> str:
    name = request.match_info["name"]
    try:
        decode(msgspec.json.encode(name), wire.ScheduleName)
    except ProtocolError:
        raise InvalidBody(
            f"a schedule's name is 1 to 100 letters, digits and _.:- ; got {name!r}",
            code="invalid_name",
        ) from None
    return name


def _template(data: bytes) -> dict[str, Any]:
    """The body's `job` as it came (the typed decode already passed), refused when it
    names a field submit does not know or one a schedule decides."""
    job: dict[str, Any] = msgspec.json.decode(data)["job"]
    for field in job:
        if field not in SUBMIT_FIELDS:
            raise InvalidBody(f"unknown field `{field}` - at `$.job.{field}`")
        if field in wire.TEMPLATE_REFUSES and job[field] is not None:
            raise InvalidBody(
                f"a schedule decides when its jobs run and makes a new job each time; "
                f"`{field}` cannot be set - at `$.job.{field}`"
            )
    return job
