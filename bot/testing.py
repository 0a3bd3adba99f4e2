"""An in-memory coordinator for testing bots and handlers without HTTP (the shipped fake).

`FakeCoordinator` speaks the `bot.link.http.Api` protocol with the coordinator's
semantics in small: jobs are queued, claimed under the caller's bot id, and end
succeeded or failed; reports are idempotent, a second different outcome is a 409.
Tests script failures (`fail_next`), cut the network (`unreachable`), hold calls
(`gates`), and read what was asked (`calls`, `count`).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, cast

import msgspec

from bot.agent.watchdog import Watchdog
from bot.errors import ConflictError, ForbiddenError, NetworkError, NotFoundError, TooLargeError
from bot.identity import Identity
from bot.jobs import Registry, load_plugins
from bot.link.session import Session
from bot.reports.outbox import Outbox
from bot.settings import Settings
from bot.system.disk import Disk
from bot.work.scheduler import Scheduler
from botfleet.clock import Clock, FakeClock, SystemClock
from botfleet.protocol import encode
from botfleet.protocol import messages as m
from botfleet.protocol.joblogs import BulkLogRequest, BulkLogResponse, BulkLogResult, LogBatch
from botfleet.protocol.prefetch import ReleaseRequest, ReleaseResponse, ReleaseResult, ReleaseStatus


@dataclass(slots=True)
class FakeJob:
    id: str
    op: str
    payload: dict[str, Any]
    state: str = "queued"
    attempt: int = 0
    bot_id: str | None = None
    timeout_s: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: str | None = None
    retryable: bool | None = None
    progress: float | None = None


class FakeCoordinator:
    def __init__(
        self,
        *,
        features: Iterable[str] = (),
        assignment: m.Assignment | None = None,
        config: m.BotConfig | None = None,
        bot_id: str = "bot_fake",
        max_body_bytes: int | None = None,
    ) -> None:
        self.features = list(features)
        #: A request encoded larger than this gets 413; it is announced in `config` unless
        #: `announce_limit` is False (a coordinator that does not say it).
        self.max_body_bytes = max_body_bytes
        self.announce_limit = True
        self.assignment = assignment
        self.config = config
        self.bot_id = bot_id
        self.jobs: dict[str, FakeJob] = {}
        self.queue: list[str] = []
        self.calls: list[tuple[str, Any]] = []
        self.heartbeat_answers: list[m.HeartbeatResponse] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.token: str | None = None
        self.registered = asyncio.Event()
        self.deregistered = False
        self.expires_in: int | None = None  # the bot token's lifetime, sent at registration
        #: While True every call fails as if the network were cut (after being recorded).
        self.unreachable = False
        self.log_lines: dict[str, list[str]] = {}  # job id -> the texts of its lines
        self._failures: dict[str, list[BaseException]] = {}
        self._ids = itertools.count(1)
        self._changed = asyncio.Event()

    # ------------------------------------------------------------ test controls

    def add_job(
        self,
        op: str,
        payload: dict[str, Any] | None = None,
        *,
        job_id: str | None = None,
        timeout_s: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        job_id = job_id or f"job_{next(self._ids)}"
        self.jobs[job_id] = FakeJob(
            job_id, op, dict(payload or {}), timeout_s=timeout_s, metadata=dict(metadata or {})
        )
        self.queue.append(job_id)
        return job_id

    def fail_next(self, method: str, *errors: BaseException) -> None:
        """The next calls of `method` raise `errors`, one each, in order."""
        self._failures.setdefault(method, []).extend(errors)

    def count(self, method: str) -> int:
        return Counter(name for name, _ in self.calls)[method]

    def requests(self, method: str) -> list[Any]:
        return [request for name, request in self.calls if name == method]

    def finished(self) -> list[FakeJob]:
        return [job for job in self.jobs.values() if job.state in m.TERMINAL_STATES]

    async def wait_finished(self, count: int, deadline_s: float = 30.0) -> None:
        """Wait until `count` jobs are terminal (the deadline is a guard, never a measure)."""

        async def settled() -> None:
            while len(self.finished()) < count:
                await self._changed.wait()

        await asyncio.wait_for(settled(), deadline_s)

    async def _enter(self, method: str, request: Any) -> None:
        self.calls.append((method, request))
        gate = self.gates.get(method)
        if gate is not None:
            await gate.wait()
        if self.unreachable:
            raise NetworkError(f"{method}: the network is cut")
        failures = self._failures.get(method)
        if failures:
            raise failures.pop(0)
        limit = self.max_body_bytes
        if limit is not None and len(encode(request)) > limit:
            raise TooLargeError(
                413,
                f"{method}: 413 body_too_large: request body too large (limit {limit} bytes)",
                code="body_too_large",
                limit_bytes=limit,
            )

    def _touch(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # ------------------------------------------------------------ the Api protocol

    def authenticate(self, token: str | None) -> None:
        self.token = token

    async def register(self, request: m.RegisterRequest) -> m.RegisterResponse:
        await self._enter("register", request)
        self.registered.set()
        return m.RegisterResponse(
            bot_id=self.bot_id,
            auth=m.Auth(access_token="token-1", expires_in=self.expires_in),
            assignment=self.assignment,
            config=self.config
            or m.BotConfig(
                features=list(self.features),
                max_body_bytes=self.max_body_bytes if self.announce_limit else None,
            ),
        )

    async def heartbeat(self, bot_id: str, request: m.HeartbeatRequest) -> m.HeartbeatResponse:
        await self._enter("heartbeat", request)
        if self.heartbeat_answers:
            return self.heartbeat_answers.pop(0)
        return m.HeartbeatResponse(lease_until="2026-01-19T10:05:00Z")

    async def claim(self, request: m.ClaimRequest) -> m.ClaimResponse:
        await self._enter("claim", request)
        results: list[m.ReportResult] | msgspec.UnsetType = msgspec.UNSET
        if request.reports:  # `report_on_claim`: applied first, as the coordinator does
            results = self._apply(request.reports)
        handed: list[m.ClaimedJob] = []
        for job_id in list(self.queue):
            if len(handed) >= request.limit:
                break
            job = self.jobs[job_id]
            if job.op not in request.operations:
                continue
            self.queue.remove(job_id)
            job.state, job.bot_id = "running", request.bot_id
            job.attempt += 1
            handed.append(
                m.ClaimedJob(
                    id=job.id,
                    op=job.op,
                    payload=job.payload,
                    attempt=job.attempt,
                    lease_until="2026-01-19T10:03:00Z",
                    timeout_s=job.timeout_s,
                    metadata=job.metadata,
                )
            )
        self._touch()
        return m.ClaimResponse(jobs=handed, results=results)

    def _reported(self, job_id: str) -> FakeJob:
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFoundError(404, f"no job {job_id}")
        if job.bot_id != self.bot_id:
            raise ForbiddenError(403, f"job {job_id} was not handed to this bot")
        return job

    async def complete(self, job_id: str, request: m.CompleteRequest) -> None:
        await self._enter("complete", request)
        self._complete(job_id, request.result)

    async def fail(self, job_id: str, request: m.FailRequest) -> None:
        await self._enter("fail", request)
        self._fail(job_id, request.error, request.retryable, request.attempt)

    def _complete(self, job_id: str, result: dict[str, Any]) -> None:
        job = self._reported(job_id)
        if job.state == "succeeded" and job.result == result:
            return  # the same report again: one effect
        if job.state in m.TERMINAL_STATES:
            raise ConflictError(409, f"job {job_id} is already {job.state}")
        job.state, job.result = "succeeded", result
        self._touch()

    def _fail(self, job_id: str, error: str, retryable: bool, attempt: int | None) -> None:
        job = self._reported(job_id)
        if job.state == "failed" and job.error == error:
            return
        if job.state in m.TERMINAL_STATES or attempt not in (None, job.attempt):
            raise ConflictError(409, f"job {job_id} is {job.state}, attempt {job.attempt}")
        job.state, job.error, job.retryable = "failed", error, retryable
        self._touch()

    async def report_batch(self, request: m.BatchReportRequest) -> m.BatchReportResponse:
        await self._enter("report_batch", request)
        return m.BatchReportResponse(results=self._apply(request.reports))

    def _apply(self, reports: list[m.ReportItem]) -> list[m.ReportResult]:
        results = []
        for item in reports:
            status: m.ReportStatus
            try:
                if item.action == "complete":
                    self._complete(item.job_id, item.result or {})
                else:
                    self._fail(item.job_id, item.error or "", item.retryable, item.attempt)
                status = "accepted"
            except ConflictError:
                status = "conflict"
            except NotFoundError:
                status = "not_found"
            except ForbiddenError:
                status = "forbidden"
            results.append(m.ReportResult(job_id=item.job_id, status=status))
        return results

    async def progress(self, job_id: str, request: m.ProgressRequest) -> None:
        await self._enter("progress", request)
        self._reported(job_id).progress = request.progress

    async def logs(self, job_id: str, request: LogBatch) -> None:
        await self._enter("logs", request)
        self.log_lines.setdefault(job_id, []).extend(line.text for line in request.lines)

    async def logs_bulk(self, request: BulkLogRequest) -> BulkLogResponse:
        await self._enter("logs_bulk", request)
        results = []
        for batch in request.batches:
            lines = self.log_lines.setdefault(batch.job_id, [])
            lines.extend(line.text for line in batch.lines)
            results.append(
                BulkLogResult(
                    job_id=batch.job_id,
                    attempt=batch.attempt,
                    status="accepted",
                    stored=len(batch.lines),
                )
            )
        return BulkLogResponse(results=results)

    async def deregister(self, bot_id: str, request: m.DeregisterRequest) -> None:
        await self._enter("deregister", request)
        self.deregistered = True

    async def release(self, request: ReleaseRequest) -> ReleaseResponse:
        """Held jobs back to the front of the queue, uncharged (`prefetch`)."""
        await self._enter("release", request)
        results, back = [], []
        for item in request.jobs:
            job = self.jobs.get(item.job_id)
            status: ReleaseStatus
            if job is None:
                status = "not_found"
            elif job.state == "running" and job.attempt == item.attempt:
                job.state, job.bot_id = "queued", None
                job.attempt -= 1  # uncharged (the fake keeps one number for both)
                back.append(job.id)
                status = "released"
            else:
                status = "conflict"
            results.append(ReleaseResult(job_id=item.job_id, status=status))
        self.queue[0:0] = back  # first in line again, in their order
        self._touch()
        return ReleaseResponse(results=results)


def standalone_scheduler(
    api: Any,
    state_dir: Path,
    *,
    registry: Registry | None = None,
    clock: Clock | None = None,
    settings: Settings | None = None,
    features: Iterable[str] = (),
    hooks: Any = None,
    disk: Disk | None = None,
    watchdog: Watchdog | None = None,
) -> Scheduler:
    """A registered `Scheduler` outside a bot: outbox opened in `state_dir`, session set up."""
    # No hedged claims unless a test asks: on a fake clock every claim would be late.
    settings = settings or Settings(state_dir=state_dir, claim_hedge_ms=0)
    if registry is None:
        registry = load_plugins(Registry(), entry_points=())
    session = Session.start(
        settings, Identity("key", settings.bot_name, "inst_test"), registry.operations()
    )
    session.bot_id = "bot_fake"
    session.features = frozenset(features)
    outbox = Outbox(state_dir, disk=disk)
    outbox.open()
    return Scheduler(
        api=api,
        registry=registry,
        session=session,
        outbox=outbox,
        clock=clock or FakeClock(),
        settings=settings,
        rng=random.Random(7),
        hooks=hooks,
        watchdog=watchdog,
    )


class ScaledClock:
    """Real time running `1/scale` times faster: `sleep(s)` takes `s * scale` real seconds
    and `monotonic()`/`now()` move on by `s` meanwhile. Every sleep is recorded at its full
    length (`slept`).

    A bot runs with its production settings (30 s heartbeats, 500 ms backoff, 60 s drain
    grace) in a fraction of the time, and a test can count what it waited instead of
    measuring durations.
    """

    def __init__(self, scale: float = 0.01) -> None:
        self.scale = scale
        self.slept: list[float] = []
        self._real = SystemClock()
        self._start_mono = self._real.monotonic()
        self._start_now = self._real.now()

    def _elapsed(self) -> float:
        return (self._real.monotonic() - self._start_mono) / self.scale

    def monotonic(self) -> float:
        return self._start_mono + self._elapsed()

    def now(self) -> datetime:
        return self._start_now + timedelta(seconds=self._elapsed())

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await asyncio.sleep(max(0.0, seconds) * self.scale)


class FailingDisk(Disk):
    """A disk that fails when told to: set `append_errno` (ENOSPC: full) to make appends
    write a fragment and raise, `rewrite_errno` to make atomic rewrites raise."""

    def __init__(self) -> None:
        self.append_errno: int | None = None
        self.rewrite_errno: int | None = None

    def open_append(self, path: Path) -> BinaryIO:
        return cast(BinaryIO, _FailingWriter(super().open_append(path), self))

    def write_atomic(self, path: Path, data: bytes) -> None:
        if self.rewrite_errno is not None:
            raise OSError(self.rewrite_errno, os.strerror(self.rewrite_errno))
        super().write_atomic(path, data)


class _FailingWriter:
    def __init__(self, handle: BinaryIO, disk: FailingDisk) -> None:
        self._handle = handle
        self._disk = disk

    def write(self, data: bytes) -> int:
        code = self._disk.append_errno
        if code is None:
            return self._handle.write(data)
        self._handle.write(data[: len(data) // 2])  # a torn write, then the error
        raise OSError(code, os.strerror(code))

    def flush(self) -> None:
        self._handle.flush()

    def fileno(self) -> int:
        return self._handle.fileno()

    def close(self) -> None:
        self._handle.close()
