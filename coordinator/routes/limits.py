"""Fleet-wide limits: set, list and remove them (operators), and check the limits a
submit names (an unknown one is a 400 naming the field)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import msgspec
from aiohttp import web

from botfleet.protocol import limits as lim
from coordinator.context import context
from coordinator.errors import InvalidBody, NotFound
from coordinator.routes.common import read_body, respond
from coordinator.store.base import NewJob, Store
from coordinator.store.limits import LimitRecord, LimitSpec

log = logging.getLogger(__name__)

_NAME_CHECK = msgspec.json.Decoder(lim.LimitName)


def setup(router: web.UrlDispatcher) -> None:
    router.add_put("/v1/limits/{name}", put_limit)
    router.add_get("/v1/limits", list_limits)
    router.add_delete("/v1/limits/{name}", delete_limit)


def _name(request: web.Request) -> str:
    name = request.match_info["name"]
    try:
        return _NAME_CHECK.decode(msgspec.json.encode(name))
    except msgspec.ValidationError:
        raise InvalidBody(
            f"limit name {name!r} must be 1-110 letters, digits, '_', '.', ':', '/' or '-'"
            " - at `name`"
        ) from None


def _view(record: LimitRecord) -> lim.LimitView:
    return lim.LimitView(
        name=record.name,
        max_running=record.max_running,
        per_second=record.per_second,
        burst=record.burst,
        running=record.running,
        tokens=round(record.tokens, 3),
    )


async def put_limit(request: web.Request) -> web.Response:
    ctx = context(request)
    name = _name(request)
    body = await read_body(request, lim.PutLimitRequest)
    await ctx.store.put_limit(LimitSpec(name, body.max_running, body.per_second, body.burst))
    log.info(
        "limit %s set: max_running %s, per_second %s, burst %d",
        name, body.max_running, body.per_second, body.burst,
    )  # fmt: skip
    (record,) = [limit for limit in await ctx.store.list_limits() if limit.name == name]
    return respond(_view(record))


async def list_limits(request: web.Request) -> web.Response:
    records = await context(request).store.list_limits()
    return respond(lim.LimitList(limits=[_view(record) for record in records]))


async def delete_limit(request: web.Request) -> web.Response:
    """The limit as it was; jobs naming it are no longer held by it."""
    ctx = context(request)
    name = _name(request)
    found = [limit for limit in await ctx.store.list_limits() if limit.name == name]
    if not found or not await ctx.store.delete_limit(name):
        raise NotFound(f"no limit named {name!r}", code="unknown_limit")
    log.info("limit %s deleted", name)
    return respond(_view(found[0]))


async def check_limits(store: Store, jobs: Sequence[NewJob], where: str) -> None:
    """InvalidBody for a job naming a limit that does not exist, or an op: limit (those
    apply by operation); `where` may hold `{index}`. No I/O for jobs without limits."""
    if not any(job.limits for job in jobs):
        return
    known = await store.limit_names()
    for index, job in enumerate(jobs):
        for position, name in enumerate(job.limits):
            at = f"{where.format(index=index)}.limits[{position}]"
            if name.startswith(lim.OP_LIMIT_PREFIX):
                raise InvalidBody(
                    f"{name!r} applies to every job of its operation without being named"
                    f" - at `{at}`"
                )
            if name not in known:
                raise InvalidBody(
                    f"no limit named {name!r}; set it first - at `{at}`", code="unknown_limit"
                )
