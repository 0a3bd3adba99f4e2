"""What a job did: its attempts, and its log lines (sent by its bot, read and followed by
producers and operators)."""

from __future__ import annotations

import asyncio
from datetime import UTC
from typing import Literal, cast

from aiohttp import web

from botfleet.clock import to_rfc3339
from botfleet.protocol import joblogs as wire
from botfleet.protocol import messages as m
from coordinator.context import AppContext, context
from coordinator.errors import ApiError, Conflict, NotFound
from coordinator.gate import principal_of
from coordinator.longpoll.poller import woken
from coordinator.routes.common import check_job_access, query_int, read_body, respond
from coordinator.store.base import AttemptRecord
from coordinator.store.joblogs import (
    LogAppend,
    LogLineRecord,
    LogPage,
    LogQuery,
    NewLogLine,
    finished_for_good,
    marker_line,
)
from coordinator.store.records import ReportOutcome

MAX_WAIT_MS = 30_000
MAX_PAGE = 5000
DEFAULT_PAGE = 1000
# A follower looks again this often even without a notice: lines that reached another
# coordinator sharing the database wake no one here.
RECHECK_S = 0.5


def setup(router: web.UrlDispatcher) -> None:
    router.add_get("/v1/jobs/{job_id}/attempts", list_attempts)
    router.add_get("/v1/jobs/{job_id}/logs", read_logs)
    router.add_post("/v1/jobs/{job_id}/logs", append_logs)
    router.add_post("/v1/jobs/logs", append_logs_bulk)


async def list_attempts(request: web.Request) -> web.Response:
    ctx = context(request)
    job_id = request.match_info["job_id"]
    await check_job_access(ctx, principal_of(request), job_id)  # before any wait
    attempts = await ctx.store.list_attempts(job_id)
    if not attempts and await ctx.store.get_job(job_id) is None:
        raise NotFound(f"no job {job_id}", code="job_not_found")
    return respond(wire.AttemptList(attempts=[attempt_view(a) for a in attempts]))


def attempt_view(record: AttemptRecord) -> wire.AttemptView:
    return wire.AttemptView(
        attempt=record.attempt,
        bot_id=record.bot_id,
        started_at=to_rfc3339(record.claimed_at),
        ended_at=None if record.ended_at is None else to_rfc3339(record.ended_at),
        outcome=record.outcome,
        error=record.error,
    )


async def append_logs(request: web.Request) -> web.Response:
    ctx = context(request)
    identity = await ctx.auth.require_bot(request)
    job_id = request.match_info["job_id"]
    await _check_size(request)
    body = await read_body(request, wire.LogBatch)
    if len(body.lines) > wire.MAX_BATCH_LINES:
        raise _too_large()
    lines = [_new_line(line) for line in body.lines]
    batch = LogAppend(identity.bot_id, job_id, body.attempt, lines, ctx.config.max_log_bytes)
    (outcome,) = await ctx.store.append_logs([batch])
    if outcome.outcome is ReportOutcome.NOT_FOUND:
        raise NotFound(f"no job {job_id}", code="job_not_found")
    if outcome.outcome is not ReportOutcome.ACCEPTED:
        raise Conflict(
            f"attempt {body.attempt} of job {job_id} was not handed to this bot: "
            "its lines are not kept",
            code="log_not_held",
        )
    ctx.metrics.observe_log_lines(identity.bot_id, len(lines), outcome.dropped + body.dropped)
    if outcome.stored:
        ctx.waiters.logs_arrived(job_id)
    return respond(wire.LogBatchAccepted(stored=outcome.stored, dropped=outcome.dropped))


async def append_logs_bulk(request: web.Request) -> web.Response:
    ctx = context(request)
    identity = await ctx.auth.require_bot(request)
    if m.FEATURE_LOGS_BULK not in ctx.config.features:
        raise NotFound("this coordinator does not offer the logs_bulk feature")
    await _check_size(request)
    body = await read_body(request, wire.BulkLogRequest)
    if sum(len(item.lines) for item in body.batches) > wire.MAX_BATCH_LINES:
        raise _too_large()
    cap = ctx.config.max_log_bytes
    batches = [
        LogAppend(
            identity.bot_id, item.job_id, item.attempt, [_new_line(x) for x in item.lines], cap
        )
        for item in body.batches
    ]
    outcomes = await ctx.store.append_logs(batches)
    results: list[wire.BulkLogResult] = []
    received = dropped = 0
    for item, outcome in zip(body.batches, outcomes, strict=True):
        results.append(
            wire.BulkLogResult(
                job_id=item.job_id,
                attempt=item.attempt,
                status=_BULK_STATUS.get(outcome.outcome, "conflict"),
                stored=outcome.stored,
                dropped=outcome.dropped,
            )
        )
        if outcome.outcome is ReportOutcome.ACCEPTED:
            received += len(item.lines)
            dropped += outcome.dropped + item.dropped
            if outcome.stored:
                ctx.waiters.logs_arrived(item.job_id)
    ctx.metrics.observe_log_lines(identity.bot_id, received, dropped)
    return respond(wire.BulkLogResponse(results=results))


_BULK_STATUS: dict[ReportOutcome, Literal["accepted", "conflict", "not_found"]] = {
    ReportOutcome.ACCEPTED: "accepted",
    ReportOutcome.NOT_FOUND: "not_found",
}


async def _check_size(request: web.Request) -> None:
    """413 past a batch's bytes, told or not (aiohttp keeps the body it read for later)."""
    told = request.content_length
    if (told is not None and told > wire.MAX_BATCH_BYTES) or (
        len(await request.read()) > wire.MAX_BATCH_BYTES
    ):
        raise _too_large()


def _too_large() -> ApiError:
    return ApiError(
        f"a log batch holds at most {wire.MAX_BATCH_LINES} lines and "
        f"{wire.MAX_BATCH_BYTES} bytes; send smaller batches",
        code="log_batch_too_large",
        status=413,
    )


def _new_line(line: wire.LogLine) -> NewLogLine:
    ts, text = line.ts, line.text
    if ts.tzinfo is not UTC:
        ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    if len(text) > wire.MAX_LINE_CHARS:
        text = text[: wire.MAX_LINE_CHARS]
    return NewLogLine(ts, line.level, text)


async def read_logs(request: web.Request) -> web.Response:
    ctx = context(request)
    job_id = request.match_info["job_id"]
    await check_job_access(ctx, principal_of(request), job_id)  # before any wait
    attempt = query_int(request, "attempt", 0, 0, 2**31 - 1) or None
    after = query_int(request, "after", 0, 0, 2**62)
    limit = query_int(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    wait_ms = query_int(request, "wait_ms", 0, 0, MAX_WAIT_MS)
    query = LogQuery(job_id, attempt, after, limit)
    page = await _wait_for_lines(ctx, query, wait_ms / 1000)
    if page is None:
        raise NotFound(f"no job {job_id}", code="job_not_found")
    now = ctx.clock.now()
    done = finished_for_good(page, now)
    lines = list(page.lines)
    # The cap's marker, once the reader reached the end: while the job runs, only for a
    # reader that does not wait (a follower gets it at the end, with the final count).
    marker = marker_line(page, ctx.config.max_log_bytes, now)
    if marker is not None and len(lines) < limit and marker.seq > after and (done or not wait_ms):
        lines.append(marker)
    next_after = lines[-1].seq if lines else after
    return respond(
        wire.JobLogs(
            job_id=job_id,
            state=_state(page.job_state),
            lines=[_stored_line(line) for line in lines],
            next_after=next_after,
            done=done and len(page.lines) < limit,
        )
    )


async def _wait_for_lines(ctx: AppContext, query: LogQuery, wait_s: float) -> LogPage | None:
    """The page after the cursor; with `wait_s`, once it has lines, the job's log is
    complete, or the time passed."""
    if wait_s <= 0:
        return await ctx.store.read_logs(query)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    with ctx.waiters.watch_job_logs(query.job_id) as wake:
        while True:
            wake.clear()
            page = await ctx.store.read_logs(query)
            remaining = deadline - loop.time()
            if page is None or page.lines or remaining <= 0 or ctx.waiters.closed:
                return page
            if finished_for_good(page, ctx.clock.now()):
                return page
            await woken(wake, min(remaining, RECHECK_S))


def _stored_line(line: LogLineRecord) -> wire.StoredLogLine:
    return wire.StoredLogLine(
        seq=line.seq, attempt=line.attempt, ts=to_rfc3339(line.ts), level=line.level, text=line.text
    )


def _state(state: str) -> m.JobState:
    return cast(m.JobState, state)
