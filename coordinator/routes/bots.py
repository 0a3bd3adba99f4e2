"""A bot's own life: register (enrollment token), heartbeat and deregister (its bot token).

`DELETE /v1/bots/{id}` with an admin token forgets an offline bot instead
(`routes.revocation`)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from aiohttp import web

from botfleet.clock import to_rfc3339
from botfleet.protocol import messages as m
from coordinator.auth import BotIdentity, bot_token, new_bot_secret
from coordinator.context import context
from coordinator.errors import Conflict, Forbidden, InvalidBody, NotFound
from coordinator.gate import caller
from coordinator.routes.common import read_body, respond
from coordinator.routes.revocation import forget
from coordinator.store.base import BotRevoked, HeartbeatInput, Registration
from coordinator.views import assignment, bot_config

log = logging.getLogger(__name__)

MAX_CONCURRENCY_LIMIT = 10_000


def setup(router: web.UrlDispatcher) -> None:
    router.add_post("/v1/bots/register", register)
    router.add_put("/v1/bots/{bot_id}/heartbeat", heartbeat)
    router.add_delete("/v1/bots/{bot_id}", delete_bot)


async def register(request: web.Request) -> web.Response:
    ctx = context(request)
    body = await read_body(request, m.RegisterRequest)
    _check_constraints(body.constraints)
    now = ctx.clock.now()
    secret, secret_hash = new_bot_secret()
    registration = Registration(
        bot_key=body.bot_key,
        instance_id=body.instance_id,
        name=_name(body),
        version=body.version,
        capabilities=tuple(body.capabilities),
        resources={"cpu_cores": body.resources.cpu_cores, "mem_mb": body.resources.mem_mb},
        constraints=body.constraints,
        meta=body.meta,
        labels=body.labels,
        token_hash=secret_hash,
        token_expires_at=now + timedelta(seconds=ctx.config.token_ttl_s),
        lease_until=now + timedelta(seconds=ctx.config.bot_lease_ttl_s),
        default_max_concurrency=ctx.config.default_max_concurrency,
    )
    try:
        outcome = await ctx.store.register_bot(registration)
    except BotRevoked as revoked:
        raise Forbidden(
            f"bot {revoked.bot_id} is revoked: an operator must allow it "
            f"(botfleet bots allow {revoked.bot_id}) before it may register again",
            code="bot_revoked",
        ) from None
    bot = outcome.bot
    token = bot_token(bot.id, secret)
    ctx.auth.remember(token, BotIdentity(bot.id, bot.instance_id, bot.token_expires_at))
    if outcome.released_job_ids:
        log.info(
            "bot %s registered as a new instance %s; released %d job(s) of the old one",
            bot.id,
            bot.instance_id,
            len(outcome.released_job_ids),
        )
    response = m.RegisterResponse(
        bot_id=bot.id,
        auth=m.Auth(access_token=token, expires_in=ctx.config.token_ttl_s),
        assignment=assignment(bot.assignment),
        config=bot_config(ctx.config),
    )
    return respond(response, 201)


async def heartbeat(request: web.Request) -> web.Response:
    ctx = context(request)
    bot_id = request.match_info["bot_id"]
    identity = await ctx.auth.require_bot(request, bot_id)
    body = await read_body(request, m.HeartbeatRequest)
    _check_instance(bot_id, identity.instance_id, body.instance_id)
    outcome = await ctx.store.heartbeat(
        HeartbeatInput(
            bot_id,
            body.instance_id,
            # A finished job whose report is on its way, and a prefetched job not started
            # yet, keep their leases like a running one.
            [job.job_id for job in body.running]
            + list(body.unreported or ())
            + list(body.held or ()),
            body.state,
            {"cpu": body.metrics.cpu, "mem_mb": body.metrics.mem_mb},
            ctx.config.bot_lease_ttl_s,
            ctx.config.job_lease_ttl_s,
            default_timeout_s=ctx.config.default_job_timeout_s,
            held_job_ids=list(body.held or ()),
        )
    )
    if outcome is None:
        raise NotFound(f"bot {bot_id} is unknown or offline; register again", code="bot_not_found")
    # Another coordinator process may have registered a new instance moments ago.
    _check_instance(bot_id, outcome.bot.instance_id, body.instance_id)
    if outcome.released:
        ctx.metrics.observe_lost_claims(outcome.released)
        log.info(
            "bot %s never got %d job(s) handed to it (claim answers lost): queued again, "
            "no attempt used: %s",
            bot_id,
            len(outcome.released),
            ", ".join(outcome.released),
        )
    response = m.HeartbeatResponse(
        lease_until=to_rfc3339(outcome.bot.lease_until),
        assignment=assignment(outcome.bot.assignment),
        config=bot_config(ctx.config),
        extended={job_id: to_rfc3339(until) for job_id, until in outcome.extended.items()},
        cancel=list(outcome.cancel),
        command=_command(outcome.command),
    )
    return respond(response)


async def delete_bot(request: web.Request) -> web.Response:
    """The bot's own token: deregister. An admin token: forget the (offline) bot."""
    ctx = context(request)
    bot_id = request.match_info["bot_id"]
    if caller(request) is not None:  # an admin's or operator's token: forget the bot
        return await forget(ctx, bot_id)
    identity = await ctx.auth.require_bot(request, bot_id)
    return await _deregister(request, bot_id, identity)


async def _deregister(request: web.Request, bot_id: str, identity: BotIdentity) -> web.Response:
    ctx = context(request)
    # Some HTTP clients cannot send a body with DELETE: then the token's instance is meant.
    if request.can_read_body:
        instance_id = (await read_body(request, m.DeregisterRequest)).instance_id
    else:
        instance_id = identity.instance_id
    _check_instance(bot_id, identity.instance_id, instance_id)
    released = await ctx.store.deregister_bot(bot_id, instance_id)
    if released is None:
        raise NotFound(f"no bot {bot_id}", code="bot_not_found")
    ctx.auth.forget(bot_id)
    if released:
        log.info("bot %s deregistered; %d job(s) it held are queued again", bot_id, len(released))
    return respond(m.ReportAccepted())


def _check_instance(bot_id: str, current: str, instance_id: str) -> None:
    if instance_id != current:
        raise Conflict(
            f"bot {bot_id} is now instance {current}, not {instance_id}; this process was replaced",
            code="instance_replaced",
        )


def _check_constraints(constraints: dict[str, Any]) -> None:
    if "max_concurrency" not in constraints:
        return
    value = constraints["max_concurrency"]
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidBody(
            f"Expected `int`, got `{type(value).__name__}` - at `$.constraints.max_concurrency`"
        )
    if not 1 <= value <= MAX_CONCURRENCY_LIMIT:
        raise InvalidBody(
            f"Expected `int` in 1..{MAX_CONCURRENCY_LIMIT} - at `$.constraints.max_concurrency`"
        )


def _name(body: m.RegisterRequest) -> str:
    name = body.meta.get("name")
    return name[:200] if isinstance(name, str) and name else body.bot_key


def _command(command: str | None) -> m.BotCommand | None:
    if command == "drain":
        return "drain"
    if command == "quarantine":
        return "quarantine"
    if command == "release":
        return "release"
    return None
