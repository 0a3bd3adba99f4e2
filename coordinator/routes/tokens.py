"""Role tokens: who the caller is (any role token)."""

from __future__ import annotations

from aiohttp import web

from botfleet.protocol import messages as m
from coordinator.context import context
from coordinator.routes.common import respond


def setup(router: web.UrlDispatcher) -> None:
    router.add_get("/v1/whoami", whoami)


async def whoami(request: web.Request) -> web.Response:
    principal = await context(request).auth.principal(request)
    return respond(m.WhoAmI(name=principal.name, role=principal.role))
