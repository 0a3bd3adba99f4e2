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


def _view(record: LimitRecord, queued: int) -> lim.LimitView:
    return lim.LimitView(
        name=record.name,
        max_running=record.max_running,
        per_second=record.per_second,
        burst=record.burst,
        running=record.running,
        tokens=round(record.tokens, 3),
        starts_per_second=round(record.starts_per_second, 3),
        held_back=record.held_back(queued),
    )


async def _views(store: Store) -> dict[str, lim.LimitView]:
    records = await store.list_limits()
    queued = await store.queued_by_limit() if records else {}
    return {record.name: _view(record, queued.get(record.name, 0)) for record in records}


async def put_limit(request: web.Request) -> web.Response:
    ctx = context(request)
    name = _name(request)
    body = await read_body(request, lim.PutLimitRequest)
    await ctx.store.put_limit(LimitSpec(name, body.max_running, body.per_second, body.burst))
    log.info(
        "limit %s set: max_running %s, per_second %s, burst %d",
        name, body.max_running, body.per_second, body.burst,
    )  # fmt: skip
    return respond((await _views(ctx.store))[name])


async def list_limits(request: web.Request) -> web.Response:
    views = await _views(context(request).store)
    return respond(lim.LimitList(limits=list(views.values())))


async def delete_limit(request: web.Request) -> web.Response:
    """The limit as it was; jobs naming it are no longer held by it."""
    ctx = context(request)
    name = _name(request)
    found = (await _views(ctx.store)).get(name)
    if found is None or not await ctx.store.delete_limit(name):
        raise NotFound(f"no limit named {name!r}", code="unknown_limit")
    log.info("limit %s deleted", name)
    return respond(found)


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
