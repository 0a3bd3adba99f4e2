"""Prefetch (feature `prefetch`): a bot gives back jobs it claimed and never started."""

from __future__ import annotations

from aiohttp import web

from botfleet.protocol import messages as m
from botfleet.protocol import prefetch as p
from coordinator.context import context
from coordinator.errors import NotFound
from coordinator.routes.common import read_body, respond
from coordinator.store.releases import ReleaseInput, ReleaseOutcome

STATUS: dict[ReleaseOutcome, p.ReleaseStatus] = {
    ReleaseOutcome.RELEASED: "released",
    ReleaseOutcome.CONFLICT: "conflict",
    ReleaseOutcome.NOT_FOUND: "not_found",
}


def setup(router: web.UrlDispatcher) -> None:
    router.add_post("/v1/jobs/release", release)


async def release(request: web.Request) -> web.Response:
    """Queue the listed jobs again, uncharged: only those this bot holds under the
    attempt named. Claims waiting for their operations are woken at once."""
    ctx = context(request)
    if m.FEATURE_PREFETCH not in ctx.config.features:
        raise NotFound("this coordinator does not offer the prefetch feature")
    identity = await ctx.auth.require_bot(request)
    body = await read_body(request, p.ReleaseRequest)
    items = [ReleaseInput(item.job_id, item.attempt) for item in body.jobs]
    attributes: dict[str, str | int] = {
        "botfleet.bot_id": identity.bot_id,
        "botfleet.jobs": len(items),
    }
    with ctx.tracer.span("release", attributes):
        outcomes = await ctx.store.release_jobs(identity.bot_id, items)
    # The places these jobs held under the bot's concurrency are free again.
    ctx.waiters.bot_capacity_changed(identity.bot_id)
    released = [
        item.job_id
        for item, outcome in zip(items, outcomes, strict=True)
        if outcome is ReleaseOutcome.RELEASED
    ]
    ctx.metrics.observe_released(released)
    results = [
        p.ReleaseResult(job_id=item.job_id, status=STATUS[outcome])
        for item, outcome in zip(items, outcomes, strict=True)
    ]
    return respond(p.ReleaseResponse(results=results))
