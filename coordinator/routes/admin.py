"""Operators: the fleet of bots, their assignments and commands, and stats (who may
call each route: coordinator/access.py)."""

from __future__ import annotations

from aiohttp import web

from botfleet.protocol import messages as m
from coordinator.context import context
from coordinator.errors import InvalidBody, NotFound
from coordinator.routes.common import read_body, respond
from coordinator.store.base import BotUpdate
from coordinator.views import bot_view, stats


def setup(router: web.UrlDispatcher) -> None:
    router.add_get("/v1/bots", list_bots)
    router.add_get("/v1/bots/{bot_id}", get_bot)
    router.add_patch("/v1/bots/{bot_id}", patch_bot)
    router.add_get("/v1/stats", get_stats)


async def list_bots(request: web.Request) -> web.Response:
    ctx = context(request)
    bots = await ctx.store.list_bots()
    return respond(m.BotList(bots=[bot_view(bot) for bot in bots]))


async def get_bot(request: web.Request) -> web.Response:
    ctx = context(request)
    bot_id = request.match_info["bot_id"]
    bot = await ctx.store.get_bot(bot_id)
    if bot is None:
        raise NotFound(f"no bot {bot_id}", code="bot_not_found")
    return respond(bot_view(bot))


async def patch_bot(request: web.Request) -> web.Response:
    ctx = context(request)
    bot_id = request.match_info["bot_id"]
    body = await read_body(request, m.PatchBotRequest)
    if body.assignment is None and body.command is None:
        raise InvalidBody("give `assignment` and/or `command` - at `$`")
    patch = body.assignment or m.AssignmentPatch()
    update = BotUpdate(
        operations=patch.operations,
        max_concurrency=patch.max_concurrency,
        paused=patch.paused,
        command=body.command,
        follow_bot=frozenset(patch.follow_bot),
    )
    try:
        bot = await ctx.store.update_bot(bot_id, update)
    except ValueError as exc:
        raise InvalidBody(f"{exc} - at `$.assignment`") from None
    if bot is None:
        raise NotFound(f"no bot {bot_id}", code="bot_not_found")
    # A bot unpaused, given more operations or slots may now claim what waits.
    ctx.waiters.bot_capacity_changed(bot_id)
    return respond(bot_view(bot))


async def get_stats(request: web.Request) -> web.Response:
    ctx = context(request)
    record = await ctx.store.stats(ctx.config.stats_window_s)
    return respond(stats(record, ctx.clock.now()))
