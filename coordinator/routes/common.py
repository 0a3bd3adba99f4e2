"""Small helpers every handler uses: decode a body, encode an answer, read the query, and
whether a producer may see a job."""

from __future__ import annotations

from typing import Any, TypeVar, assert_never

from aiohttp import web

from botfleet.protocol import ProtocolError, decode, encode
from coordinator.auth import Principal
from coordinator.context import AppContext
from coordinator.errors import JSON, Conflict, Forbidden, InvalidBody, InvalidQuery, NotFound
from coordinator.store.base import ReportOutcome

T = TypeVar("T")


async def read_body(request: web.Request, kind: type[T]) -> T:
    """The body decoded strictly into `kind`; 400 naming the field, 413 past the size limit."""
    data = await request.read()
    try:
        return decode(data, kind)
    except ProtocolError as exc:
        if exc.field is None and str(exc).startswith("malformed JSON"):
            raise InvalidBody(str(exc), code="malformed_json") from None
        raise InvalidBody(str(exc)) from None


def respond(message: Any, status: int = 200) -> web.Response:
    return web.Response(body=encode(message), status=status, content_type=JSON)


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise InvalidQuery(f"query parameter `{name}` must be an integer, got {text!r}") from None
    if not low <= value <= high:
        raise InvalidQuery(f"query parameter `{name}` must be {low}..{high}, got {value}")
    return value


def no_job(job_id: str) -> NotFound:
    return NotFound(f"no job {job_id}", code="job_not_found")


async def check_job_access(ctx: AppContext, principal: Principal, job_id: str) -> None:
    """404, as for an unknown job, when a producer asks about a job it did not submit
    (every other role the gate let in may see every job: no lookup then)."""
    if principal.role != "producer":
        return
    job = await ctx.store.get_job(job_id)
    if job is None or job.submitted_by != principal.name:
        raise no_job(job_id)


def raise_for_outcome(outcome: ReportOutcome, job_id: str, conflict: str) -> None:
    """Map a store outcome other than ACCEPTED to its HTTP error."""
    if outcome is ReportOutcome.ACCEPTED:
        return
    if outcome is ReportOutcome.NOT_FOUND:
        raise NotFound(f"no job {job_id}", code="job_not_found")
    if outcome is ReportOutcome.FORBIDDEN:
        raise Forbidden(f"job {job_id} was not handed to this bot")
    if outcome is ReportOutcome.CONFLICT:
        raise Conflict(conflict)
    assert_never(outcome)
