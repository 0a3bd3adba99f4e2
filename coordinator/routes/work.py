"""A bot's work (its bot token): claim jobs, report results, failures and progress."""

from __future__ import annotations

import asyncio

import msgspec
from aiohttp import web

from botfleet.protocol import messages as m
from coordinator.context import AppContext, context
from coordinator.errors import Forbidden, InvalidBody, NotFound
from coordinator.longpoll import answers_at_once
from coordinator.routes.common import raise_for_outcome, read_body, respond
from coordinator.store.base import JobRecord, ProgressInput, ReportInput, ReportOutcome
from coordinator.views import claimed_jobs

ACCEPTED = m.ReportAccepted()
STATUS: dict[ReportOutcome, m.ReportStatus] = {
    ReportOutcome.ACCEPTED: "accepted",
    ReportOutcome.CONFLICT: "conflict",
    ReportOutcome.NOT_FOUND: "not_found",
    ReportOutcome.FORBIDDEN: "forbidden",
}


def setup(router: web.UrlDispatcher) -> None:
    router.add_post("/v1/jobs/claim", claim)
    router.add_post("/v1/jobs/report", batch_report)
    router.add_post("/v1/jobs/{job_id}/complete", complete)
    router.add_post("/v1/jobs/{job_id}/fail", fail)
    router.add_post("/v1/jobs/{job_id}/progress", progress)


async def claim(request: web.Request) -> web.Response:
    ctx = context(request)
    identity = await ctx.auth.require_bot(request)
    body = await read_body(request, m.ClaimRequest)
    if body.bot_id != identity.bot_id:
        raise Forbidden(f"this token belongs to bot {identity.bot_id}, not {body.bot_id}")
    results: list[m.ReportResult] | msgspec.UnsetType = msgspec.UNSET
    long_poll = m.FEATURE_LONG_POLL in ctx.config.features
    claim_id = _claim_id(ctx, body)
    prefetch = _prefetch(ctx, body)
    if body.reports:
        if m.FEATURE_REPORT_ON_CLAIM not in ctx.config.features:
            raise InvalidBody("reports on a claim need the report_on_claim feature, which is off")
        if body.instance_id is msgspec.UNSET:
            raise InvalidBody("`instance_id` is required with `reports` - at `$.instance_id`")
        if body.limit > 0 and ctx.poller.claims_at_once(body.operations):
            # The busy path: reports and claim share one transaction (one commit, and
            # the pages both touch written to the WAL once).
            results, jobs = await _report_and_claim(ctx, identity.bot_id, body, claim_id, prefetch)
            if jobs is None:
                raise _bot_not_found(body.bot_id)
            if answers_at_once(jobs) or not long_poll or body.wait_ms <= 0:
                return _claim_response(ctx, jobs, results)
            # Nothing was due after all (and no repeat): wait as any claim does.
        else:
            # Before the claim: the capacity these reports free is what the claim fills.
            results = await _apply_reports(ctx, identity.bot_id, body.reports)
        # A producer waiting on one of these jobs (`GET …?wait_ms`) was just woken: let it
        # answer before this claim goes on, so its latency does not include the claim.
        await asyncio.sleep(0)
    with ctx.tracer.span("claim", {"botfleet.bot_id": body.bot_id, "botfleet.limit": body.limit}):
        jobs = await ctx.poller.claim(
            body.bot_id,
            body.operations,
            body.limit,
            ctx.config.job_lease_ttl_s,
            wait_s=body.wait_ms / 1000 if long_poll else 0.0,
            still_wanted=lambda: _client_connected(request),
            claim_id=claim_id,
            prefetch=prefetch,
        )
    if jobs is None:
        raise _bot_not_found(body.bot_id)
    return _claim_response(ctx, jobs, results)


def _claim_id(ctx: AppContext, body: m.ClaimRequest) -> str | None:
    """The claim's id, heeded only while the feature is offered (else ignored as any
    unknown field is)."""
    if body.claim_id is msgspec.UNSET or m.FEATURE_CLAIM_ID not in ctx.config.features:
        return None
    return body.claim_id


def _prefetch(ctx: AppContext, body: m.ClaimRequest) -> int:
    """How many jobs beyond its slots the bot may hold after this claim. Without the
    feature a claim is the seed's: `limit` up to 100 (a clear 400 above), no prefetch
    (a `prefetch` field is ignored then, as any unknown field is)."""
    if m.FEATURE_PREFETCH not in ctx.config.features:
        if body.limit > m.PLAIN_CLAIM_LIMIT:
            raise InvalidBody(
                f"Expected `int` <= {m.PLAIN_CLAIM_LIMIT} without the prefetch feature, "
                f"which is off - at `$.limit`"
            )
        return 0
    return 0 if body.prefetch is msgspec.UNSET else body.prefetch


def _claim_response(
    ctx: AppContext, jobs: list[JobRecord], results: list[m.ReportResult] | msgspec.UnsetType
) -> web.Response:
    timeout_s = ctx.config.default_job_timeout_s
    return respond(m.ClaimResponse(jobs=claimed_jobs(jobs, timeout_s), results=results))


def _bot_not_found(bot_id: str) -> NotFound:
    return NotFound(f"bot {bot_id} is unknown or offline; register again", code="bot_not_found")


async def complete(request: web.Request) -> web.Response:
    ctx = context(request)
    identity = await ctx.auth.require_bot(request)
    job_id = request.match_info["job_id"]
    body = await read_body(request, m.CompleteRequest)
    report = ReportInput(job_id, "complete", attempt=body.attempt, result=body.result)
    await _report_one(ctx, identity.bot_id, report, f"job {job_id} already finished otherwise")
    return respond(ACCEPTED)


async def fail(request: web.Request) -> web.Response:
    ctx = context(request)
    identity = await ctx.auth.require_bot(request)
    job_id = request.match_info["job_id"]
    body = await read_body(request, m.FailRequest)
    report = ReportInput(
        job_id,
        "fail",
        attempt=body.attempt,
        error=body.error,
        retryable=body.retryable,
        retry_after_ms=body.retry_after_ms,
    )
    conflict = f"this bot no longer holds the lease on job {job_id}, or the job has finished"
    await _report_one(ctx, identity.bot_id, report, conflict)
    return respond(ACCEPTED)


async def batch_report(request: web.Request) -> web.Response:
    ctx = context(request)
    identity = await ctx.auth.require_bot(request)
    body = await read_body(request, m.BatchReportRequest)
    results = await _apply_reports(ctx, identity.bot_id, body.reports)
    return respond(m.BatchReportResponse(results=results))


async def _apply_reports(
    ctx: AppContext, bot_id: str, items: list[m.ReportItem]
) -> list[m.ReportResult]:
    """Apply a bot's reports in one store transaction; each one's status, in order."""
    reports = [_report_input(item) for item in items]
    with ctx.tracer.span("report", {"botfleet.bot_id": bot_id, "botfleet.jobs": len(reports)}):
        outcomes = await ctx.store.report(bot_id, reports)
    return _reported(ctx, bot_id, reports, outcomes)


async def _report_and_claim(
    ctx: AppContext, bot_id: str, body: m.ClaimRequest, claim_id: str | None, prefetch: int
) -> tuple[list[m.ReportResult], list[JobRecord] | None]:
    reports = [_report_input(item) for item in body.reports or ()]
    attributes: dict[str, str | int] = {
        "botfleet.bot_id": bot_id,
        "botfleet.jobs": len(reports),
        "botfleet.limit": body.limit,
    }
    results: list[m.ReportResult] = []

    def reported(outcomes: list[ReportOutcome]) -> None:
        results.extend(_reported(ctx, bot_id, reports, outcomes))

    with ctx.tracer.span("report_and_claim", attributes):
        jobs = await ctx.poller.report_and_claim(
            bot_id,
            reports,
            body.operations,
            body.limit,
            ctx.config.job_lease_ttl_s,
            reported,
            claim_id=claim_id,
            prefetch=prefetch,
        )
    return results, jobs


def _reported(
    ctx: AppContext, bot_id: str, reports: list[ReportInput], outcomes: list[ReportOutcome]
) -> list[m.ReportResult]:
    ctx.waiters.bot_capacity_changed(bot_id)
    results = []
    accepted = []
    for report, outcome in zip(reports, outcomes, strict=True):
        if outcome is ReportOutcome.ACCEPTED:
            accepted.append((report.job_id, report.action))
        results.append(m.ReportResult(job_id=report.job_id, status=STATUS[outcome]))
    ctx.metrics.observe_reports(accepted)
    return results


async def progress(request: web.Request) -> web.Response:
    ctx = context(request)
    identity = await ctx.auth.require_bot(request)
    job_id = request.match_info["job_id"]
    body = await read_body(request, m.ProgressRequest)
    outcome = await ctx.store.set_progress(
        identity.bot_id, ProgressInput(job_id, body.attempt, body.progress, body.message)
    )
    raise_for_outcome(outcome, job_id, f"this bot no longer runs job {job_id}")
    return respond(ACCEPTED)


async def _report_one(ctx: AppContext, bot_id: str, report: ReportInput, conflict: str) -> None:
    with ctx.tracer.span("report", {"botfleet.job_id": report.job_id}):
        outcome = await ctx.reports.report(bot_id, report)
    ctx.waiters.bot_capacity_changed(bot_id)
    raise_for_outcome(outcome, report.job_id, conflict)
    ctx.metrics.observe_report(report.job_id, report.action)


def _report_input(item: m.ReportItem) -> ReportInput:
    if item.action == "complete":
        result = item.result if item.result is not None else {}
        return ReportInput(item.job_id, "complete", attempt=item.attempt, result=result)
    return ReportInput(
        item.job_id,
        "fail",
        attempt=item.attempt,
        error=item.error,
        retryable=item.retryable,
        retry_after_ms=item.retry_after_ms,
    )


def _client_connected(request: web.Request) -> bool:
    transport = request.transport
    return transport is not None and not transport.is_closing()
