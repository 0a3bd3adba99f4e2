"""Producers and operators: submit, read, list, cancel and retry jobs.

Who may call each route is coordinator/access.py; here, a producer's token reaches
only the jobs it submitted: another submitter's job is 404 to it, as if it did not
exist, and its listings hold its own jobs only.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast, get_args

from aiohttp import web

from botfleet.protocol import messages as m
from botfleet.protocol.labels import normalised
from botfleet.tracing import Tracer
from coordinator.auth import Principal
from coordinator.context import context
from coordinator.errors import Conflict, InvalidBody, InvalidQuery
from coordinator.gate import principal_of
from coordinator.routes.common import check_job_access, no_job, query_int, read_body, respond
from coordinator.routes.dependencies import check_after, submit_checked
from coordinator.routes.limits import check_limits
from coordinator.store.base import JobQuery, JobRecord, NewJob, ReportOutcome, SubmitOutcome
from coordinator.views import job_view
from coordinator.waiting import waiting_for

JOB_STATES = frozenset(get_args(m.JobState))
MAX_WAIT_MS = 30_000
MAX_PAGE = 1000
DEFAULT_PAGE = 100


def setup(router: web.UrlDispatcher) -> None:
    router.add_post("/v1/jobs", submit)
    router.add_post("/v1/jobs/bulk", submit_bulk)
    router.add_get("/v1/jobs", list_jobs)
    router.add_get("/v1/jobs/{job_id}", get_job)
    router.add_post("/v1/jobs/{job_id}/cancel", cancel)
    router.add_post("/v1/jobs/{job_id}/retry", retry)


async def submit(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = principal_of(request)
    body = await read_body(request, m.SubmitJob)
    # The job carries this span's trace context to the bot (botfleet/tracing.py).
    with ctx.tracer.span("submit", {"botfleet.op": body.op}, parent=_trace_parent(body)):
        job = _new_job(body, ctx.clock.now(), "$", ctx.tracer, principal.name)
        check_after(body.after, None, "$")
        await check_limits(ctx.store, [job], "$")
        (outcome,) = await submit_checked(ctx.store, principal, [job], "$")
    _check_key_owner(principal, [outcome])
    if outcome.created:
        ctx.metrics.observe_submitted((outcome.job.op,))
    response = m.SubmitResponse(id=outcome.job.id, state=_state(outcome.job))
    return respond(response, 201 if outcome.created else 200)


async def submit_bulk(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = principal_of(request)
    body = await read_body(request, m.BulkSubmitRequest)
    now = ctx.clock.now()
    with ctx.tracer.span("submit_bulk", {"botfleet.jobs": len(body.jobs)}):
        jobs = [
            _new_job(job, now, f"$.jobs[{i}]", ctx.tracer, principal.name)
            for i, job in enumerate(body.jobs)
        ]
        for i, job in enumerate(body.jobs):
            check_after(job.after, i, f"$.jobs[{i}]")
        await check_limits(ctx.store, jobs, "$.jobs[{index}]")
        outcomes = await submit_checked(ctx.store, principal, jobs, "$.jobs[{index}]")
    ctx.metrics.observe_submitted(o.job.op for o in outcomes if o.created)
    # The others in the request stand (they are committed): the 409 says which key clashed.
    _check_key_owner(principal, outcomes)
    return respond(m.BulkSubmitResponse(ids=[o.job.id for o in outcomes]), 201)


async def get_job(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = principal_of(request)
    job_id = request.match_info["job_id"]
    wait_ms = query_int(request, "wait_ms", 0, 0, MAX_WAIT_MS)
    # Checked before any wait, so how long the answer takes says nothing about another
    # submitter's job.
    await check_job_access(ctx, principal, job_id)
    job = await ctx.poller.job(job_id, wait_ms / 1000)
    if job is None:
        raise no_job(job_id)
    return respond(job_view(job, await waiting_for(ctx.store, job)))


async def list_jobs(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = principal_of(request)
    state = request.query.get("state") or None
    if state is not None and state not in JOB_STATES:
        raise InvalidQuery(
            f"query parameter `state` must be one of {', '.join(sorted(JOB_STATES))}, got {state!r}"
        )
    op = request.query.get("op") or None
    limit = query_int(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    cursor = request.query.get("cursor") or None
    try:
        submitted_by = principal.name if principal.role == "producer" else None
        query = JobQuery(state, op, limit, cursor, submitted_by=submitted_by)
        jobs, next_cursor = await ctx.store.list_jobs(query)
    except ValueError:
        raise InvalidQuery(
            "query parameter `cursor` is not a cursor this server gave out", code="invalid_cursor"
        ) from None
    return respond(m.JobList(jobs=[job_view(job) for job in jobs], next_cursor=next_cursor))


async def cancel(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = principal_of(request)
    job_id = request.match_info["job_id"]
    await check_job_access(ctx, principal, job_id)
    outcome, job = await ctx.store.cancel_job(job_id)
    return respond(job_view(_changed(job_id, outcome, job, "cancelled")))


async def retry(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = principal_of(request)
    job_id = request.match_info["job_id"]
    await check_job_access(ctx, principal, job_id)
    outcome, job = await ctx.store.retry_job(job_id)
    return respond(job_view(_changed(job_id, outcome, job, "retried")))


def _check_key_owner(principal: Principal, outcomes: list[SubmitOutcome]) -> None:
    """A producer's idempotency key that names another submitter's job: 409, without
    that job's id."""
    if principal.role != "producer":
        return
    for outcome in outcomes:
        if not outcome.created and outcome.job.submitted_by != principal.name:
            raise Conflict(
                f"idempotency_key {outcome.job.idempotency_key!r} was used by another "
                "submitter; choose another key",
                code="idempotency_key_taken",
            )


def _changed(job_id: str, outcome: ReportOutcome, job: JobRecord | None, verb: str) -> JobRecord:
    if outcome is ReportOutcome.NOT_FOUND or job is None:
        raise no_job(job_id)
    if outcome is not ReportOutcome.ACCEPTED:
        raise Conflict(f"job {job_id} is {job.state}; it cannot be {verb}", code="job_state")
    return job


def _trace_parent(body: m.SubmitJob) -> dict[str, Any] | None:
    """The producer's trace context, when it sent one in the metadata."""
    return body.metadata if "traceparent" in body.metadata else None


def _new_job(
    body: m.SubmitJob, now: datetime, where: str, tracer: Tracer, submitted_by: str
) -> NewJob:
    if body.delay_ms is not None and body.run_at is not None:
        raise InvalidBody(f"give `delay_ms` or `run_at`, not both - at `{where}`")
    if body.run_at is not None:
        run_at = body.run_at if body.run_at.tzinfo else body.run_at.replace(tzinfo=UTC)
        try:
            run_at = run_at.astimezone(UTC)
        except OverflowError:
            raise InvalidBody(f"`run_at` is out of range - at `{where}.run_at`") from None
    elif body.delay_ms:
        run_at = now + timedelta(milliseconds=body.delay_ms)
    else:
        run_at = now
    return NewJob(
        op=body.op,
        payload=body.payload,
        run_at=run_at,
        priority=body.priority,
        max_attempts=body.max_attempts,
        timeout_s=body.timeout_s,
        idempotency_key=body.idempotency_key,
        metadata=_with_trace(body.metadata, tracer),
        expires_at=(
            None if body.expires_in_ms is None else now + timedelta(milliseconds=body.expires_in_ms)
        ),
        submitted_by=submitted_by,
        requires=normalised(body.requires),
        after=tuple(body.after),
        limits=tuple(body.limits),
    )


def _with_trace(metadata: dict[str, Any], tracer: Tracer) -> dict[str, Any]:
    """The metadata with the current trace context; the same dict when there is none."""
    carrier: dict[str, Any] = {}
    tracer.inject(carrier)
    return {**metadata, **carrier} if carrier else metadata


def _state(job: JobRecord) -> m.JobState:
    return cast(m.JobState, job.state)
