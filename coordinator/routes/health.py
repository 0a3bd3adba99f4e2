"""Unauthenticated: liveness, readiness, Prometheus metrics, and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web

from botfleet.protocol import messages as m
from coordinator.context import context
from coordinator.errors import JSON
from coordinator.metrics import CONTENT_TYPE
from coordinator.routes.common import respond
from coordinator.store.base import StoreError

HEALTHY = m.Health(status="ok")


def setup(router: web.UrlDispatcher) -> None:
    router.add_get("/healthz", healthz)
    router.add_get("/readyz", readyz)
    router.add_get("/metrics", metrics)
    router.add_get("/openapi.json", openapi)


async def healthz(_: web.Request) -> web.Response:
    return respond(HEALTHY)


async def readyz(request: web.Request) -> web.Response:
    ctx = context(request)
    try:
        await ctx.store.ping()
    except StoreError as exc:
        response = respond(m.Health(status="unavailable", detail=str(exc)), 503)
        response.headers["Retry-After"] = str(ctx.config.store_retry_after_s)
        return response
    return respond(HEALTHY)


async def metrics(request: web.Request) -> web.Response:
    ctx = context(request)
    body = await ctx.metrics.render(ctx.store)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=context(request).openapi, content_type=JSON)
