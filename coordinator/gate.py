"""The gate every request passes: the access rule of its route (`coordinator.access`),
the caller's role token, and the failed-authentication throttle.

Applied once, as middleware, so no handler can forget it. A handler of a role route
finds the caller with `principal_of`; bot routes pass untouched (their handlers check
the bot's own token through `BotTokenCache`, so the claim and report path gains no
store lookup here).
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from coordinator.access import rule_for
from coordinator.auth import Principal
from coordinator.context import context
from coordinator.errors import TooManyRequests, Unauthorized

log = logging.getLogger(__name__)

PRINCIPAL = web.RequestKey("botfleet_principal", Principal)
# A token that was genuine but has lapsed is no guess: a fleet whose tokens lapse
# together must not lock its own address out.
NOT_COUNTED = frozenset({"token_expired"})


def caller(request: web.Request) -> Principal | None:
    """The role token the gate admitted; None on a route that needs none (or took a
    bot's own token)."""
    return request.get(PRINCIPAL)


def principal_of(request: web.Request) -> Principal:
    """The role token of a route whose rule takes nothing else."""
    principal = caller(request)
    if principal is None:
        raise RuntimeError(f"{request.method} {request.path}: the gate admitted no role token")
    return principal


def access_middleware() -> Middleware:
    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        match = request.match_info
        if match.http_exception is not None:  # no such route: aiohttp's 404 or 405
            return await handler(request)
        resource = match.route.resource
        path = resource.canonical if resource is not None else request.path
        rule = rule_for(request.method, path)
        if rule is None:
            log.error("%s %s has no access rule (coordinator/access.py)", request.method, path)
            raise web.HTTPInternalServerError(text="this route has no access rule")
        if rule.public:
            return await handler(request)
        ctx = context(request)
        address = request.remote or "unknown"
        wait_s = ctx.throttle.retry_after_s(address)
        if wait_s is not None:
            raise TooManyRequests(
                f"more than {ctx.throttle.limit} failed authentications from {address} within "
                f"{ctx.throttle.window_s:g} s; try again in {wait_s} s",
                wait_s,
                code="too_many_failed_authentications",
            )
        try:
            if rule.roles:
                principal = await ctx.auth.admit(request, rule)
                if principal is not None:
                    request[PRINCIPAL] = principal
            return await handler(request)
        except Unauthorized as refused:
            if refused.code not in NOT_COUNTED:
                ctx.throttle.failed(address)
            raise

    return gate
