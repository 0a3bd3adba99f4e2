"""An operator's hold on a bot (admin or operator token): revoke it, allow it again, forget it.

A revocation is in the store, so every coordinator process sharing the database
refuses the bot at once: its heartbeats and claims find no online bot (404), its
reports are stale (409), its bot_key cannot register (403 `bot_revoked`), and a call
with its token is told it is revoked (401 `bot_revoked`). This process also forgets
the token from its `BotTokenCache`. Another process's cache may still take the token
for at most the cache's time to live (`ServerConfig.token_cache_ttl_s`, 5 s) from
when it cached it; that is safe
because the cache only saves the token lookup: every call it lets through still
reaches the store, which refuses it as above, so the token carries no power there
either, only a different answer (404 or 409 instead of 401).
"""

from __future__ import annotations

import logging

from aiohttp import web

from botfleet.protocol import messages as m
from coordinator.context import AppContext, context
from coordinator.errors import Conflict, NotFound
from coordinator.routes.common import respond
from coordinator.store.base import ForgetOutcome
from coordinator.views import bot_view

log = logging.getLogger(__name__)


def setup(router: web.UrlDispatcher) -> None:
    router.add_post("/v1/bots/{bot_id}/revoke", revoke)
    router.add_post("/v1/bots/{bot_id}/allow", allow)
    # DELETE /v1/bots/{bot_id} with an admin token: `forget`, dispatched in routes.bots.


async def revoke(request: web.Request) -> web.Response:
    ctx = context(request)
    bot_id = request.match_info["bot_id"]
    outcome = await ctx.store.revoke_bot(bot_id)
    if outcome is None:
        raise NotFound(f"no bot {bot_id}", code="bot_not_found")
    ctx.auth.forget(bot_id)
    # A claim of the bot held open here ends now, and finds the bot gone.
    ctx.waiters.bot_capacity_changed(bot_id)
    log.info(
        "bot %s revoked; %d job(s) it held are queued again, no attempt used",
        bot_id,
        len(outcome.requeued),
    )
    return respond(bot_view(outcome.bot))


async def allow(request: web.Request) -> web.Response:
    ctx = context(request)
    bot_id = request.match_info["bot_id"]
    bot = await ctx.store.allow_bot(bot_id)
    if bot is None:
        raise NotFound(f"no bot {bot_id}", code="bot_not_found")
    log.info("bot %s allowed: its bot_key may register again", bot_id)
    return respond(bot_view(bot))


async def forget(ctx: AppContext, bot_id: str) -> web.Response:
    """Forget an offline bot (the gate let an admin or operator in); its jobs keep its id."""
    outcome = await ctx.store.forget_bot(bot_id)
    if outcome is ForgetOutcome.NOT_FOUND:
        raise NotFound(f"no bot {bot_id}", code="bot_not_found")
    if outcome is ForgetOutcome.ONLINE:
        raise Conflict(
            f"bot {bot_id} is online: drain it (or revoke it) and forget it once it is offline",
            code="bot_online",
        )
    if outcome is ForgetOutcome.RUNNING:
        raise Conflict(f"bot {bot_id} still holds running jobs", code="bot_busy")
    if outcome is ForgetOutcome.REVOKED:
        raise Conflict(
            f"bot {bot_id} is revoked; forgetting it would let its bot_key register again: "
            "allow it first if that is meant",
            code="bot_revoked",
        )
    ctx.auth.forget(bot_id)
    log.info("bot %s forgotten; its jobs keep its id", bot_id)
    return respond(m.ReportAccepted())
