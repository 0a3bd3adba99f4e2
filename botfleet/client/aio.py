"""`AsyncClient`: the producer and operator API as coroutines, over one keep-alive session."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator, Iterable, Mapping
from types import TracebackType
from typing import Any, Protocol, Unpack

from botfleet.client.fleet import FleetCalls
from botfleet.client.joblogs import log_lines
from botfleet.client.retry import RetryPolicy
from botfleet.client.settings import resolve
from botfleet.client.submitting import JobOptions, JobSpec, Requires, chunks, keyed, new_job
from botfleet.client.transport import Transport, segment
from botfleet.client.waiting import MAX_WAIT_MS, Deadline, outcome, wait_one, watch
from botfleet.clock import Clock, SystemClock
from botfleet.protocol import joblogs as wire
from botfleet.protocol import messages as m

DEFAULT_PAGE = 100
BULK_CONCURRENCY = 2  # bulk requests in flight: one is committed while the next is sent


class Identified(Protocol):
    @property
    def id(self) -> str: ...


JobRef = str | Identified  # an id, a handle, or a job view


def job_id(job: JobRef) -> str:
    return job if isinstance(job, str) else job.id


class AsyncJobHandle:
    """A submitted job: `await handle.result(timeout=30)`."""

    def __init__(self, client: AsyncClient, id: str, state: m.JobState = "queued") -> None:
        self.id = id
        self.state = state  # as submitted; `get()` for the current one
        self._client = client

    def __repr__(self) -> str:
        return f"AsyncJobHandle({self.id!r})"

    async def get(self) -> m.JobView:
        return await self._client.get(self.id)

    async def wait(self, timeout: float | None = None) -> m.JobView:  # noqa: ASYNC109
        return await self._client.wait(self.id, timeout)

    async def result(self, timeout: float | None = None) -> dict[str, Any]:  # noqa: ASYNC109
        return await self._client.result(self.id, timeout)

    async def cancel(self) -> m.JobView:
        return await self._client.cancel(self.id)

    def logs(self, *, follow: bool = False) -> AsyncIterator[wire.StoredLogLine]:
        return self._client.logs(self.id, follow=follow)


class AsyncClient(FleetCalls):
    """The producer and operator API; use as `async with AsyncClient(...) as client`.

    The job calls are here; the calls about the fleet (bots, stats, tokens, limits,
    schedules) come from `FleetCalls`.

    `server`, `token` and `ca_file` default to `BOTFLEET_SERVER`, `BOTFLEET_TOKEN`
    (else `BOTFLEET_ADMIN_TOKEN`) and `BOTFLEET_CA_FILE`; `client_cert` and `client_key`
    (mutual TLS) to `BOTFLEET_CLIENT_CERT` and `BOTFLEET_CLIENT_KEY`. `timeout_s` bounds each
    request (beyond the server-side wait it asks for).
    """

    def __init__(
        self,
        server: str | None = None,
        *,
        token: str | None = None,
        ca_file: str | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        environ: Mapping[str, str] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        environ = os.environ if environ is None else environ
        self.settings = resolve(
            server, token, ca_file, timeout_s, environ, client_cert=client_cert,
            client_key=client_key,
        )  # fmt: skip
        self._clock = clock or SystemClock()
        self._http = Transport(
            self.settings, retry or RetryPolicy(), self._clock, rng or random.Random()
        )

    @property
    def server(self) -> str:
        return self.settings.server

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.close()

    # ------------------------------------------------------------ submitting

    async def submit(
        self,
        op: str | m.SubmitJob,
        payload: Mapping[str, Any] | None = None,
        **options: Unpack[JobOptions],
    ) -> AsyncJobHandle:
        """Submit one job: an op, its payload and options (`priority`, `delay_ms`,
        `run_at`, `max_attempts`, `timeout_s`, `idempotency_key`, `metadata`,
        `requires`: labels its bot must have, e.g. `{"gpu": ["a100", "h100"]}`, `after`:
        ids of jobs to wait for, `limits`: names of the limits it falls under), or a
        ready `SubmitJob`."""
        (job,) = keyed([new_job(op, payload, **options)])
        answer = await self._http.call("POST", "/v1/jobs", m.SubmitResponse, body=job)
        return AsyncJobHandle(self, answer.id, answer.state)

    async def submit_many(
        self,
        jobs: Iterable[JobSpec],
        *,
        concurrency: int = BULK_CONCURRENCY,
        requires: Requires | None = None,
    ) -> list[AsyncJobHandle]:
        """Submit jobs (`SubmitJob`s or `(op, payload)` pairs) in bulk requests of up to
        1,000, a few at a time; the handles come back in the order given. `requires`
        goes to every job without requirements of its own. A job's `after` may name an
        earlier job of the same call as "#N" (its index), so a graph goes in one request
        (then at most 1,000 jobs)."""
        parts = chunks(keyed(jobs, requires))
        slots = asyncio.Semaphore(max(1, concurrency))

        async def send(part: list[m.SubmitJob]) -> list[str]:
            async with slots:
                request = m.BulkSubmitRequest(jobs=part)
                answer = await self._http.call(
                    "POST", "/v1/jobs/bulk", m.BulkSubmitResponse, body=request
                )
                return answer.ids

        try:
            async with asyncio.TaskGroup() as group:
                sent = [group.create_task(send(part)) for part in parts]
        except BaseExceptionGroup as failures:
            raise _first(failures) from None
        return [AsyncJobHandle(self, id) for task in sent for id in task.result()]

    # ------------------------------------------------------------ reading and waiting

    async def get(self, job: JobRef, *, wait_ms: int = 0) -> m.JobView:
        """The job now, or (with `wait_ms`, at most 30,000) once it ends or that time passes."""
        wait_ms = max(0, min(wait_ms, MAX_WAIT_MS))
        params = {"wait_ms": str(wait_ms)} if wait_ms else None
        path = f"/v1/jobs/{segment(job_id(job))}"
        return await self._http.call("GET", path, m.JobView, params=params, wait_s=wait_ms / 1000)

    async def page(
        self,
        *,
        state: m.JobState | None = None,
        op: str | None = None,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> m.JobList:
        """One page of jobs, newest first, and the cursor of the next."""
        pairs = (("state", state), ("op", op), ("limit", limit), ("cursor", cursor))
        params = {key: str(value) for key, value in pairs if value is not None}
        return await self._http.call("GET", "/v1/jobs", m.JobList, params=params)

    async def jobs(
        self,
        *,
        state: m.JobState | None = None,
        op: str | None = None,
        page_size: int = DEFAULT_PAGE,
    ) -> AsyncIterator[m.JobView]:
        """Every job, newest first, following the cursors."""
        cursor: str | None = None
        while True:
            listing = await self.page(state=state, op=op, limit=page_size, cursor=cursor)
            for view in listing.jobs:
                yield view
            cursor = listing.next_cursor
            if not cursor or not listing.jobs:
                return

    # A `timeout` argument, not asyncio.timeout(): the deadline sets the server-side waits.
    async def wait(self, job: JobRef, timeout: float | None = None) -> m.JobView:  # noqa: ASYNC109
        """The job once it has ended, whatever its state; `WaitTimeout` (a `TimeoutError`)
        when `timeout` seconds pass first."""
        deadline = Deadline(self._clock, timeout)
        return await wait_one(self._get_waiting, job_id(job), deadline, timeout)

    async def result(
        self,
        job: JobRef,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """The job's result once it succeeds; `JobFailed`, `JobCancelled` or `WaitTimeout`."""
        return outcome(await self.wait(job, timeout))

    async def as_completed(
        self,
        jobs: Iterable[JobRef],
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> AsyncIterator[m.JobView]:
        """Each job's final view as it ends; `WaitTimeout` once `timeout` seconds pass."""
        ids = [job_id(job) for job in jobs]
        async for view in watch(self._get_waiting, ids, Deadline(self._clock, timeout)):
            if view.state in m.TERMINAL_STATES:
                yield view

    async def _get_waiting(self, job: str, wait_ms: int) -> m.JobView:
        return await self.get(job, wait_ms=wait_ms)

    # ------------------------------------------------------------ what a job did

    async def attempts(self, job: JobRef) -> list[wire.AttemptView]:
        """Every attempt of the job: its bot, times, outcome and error."""
        path = f"/v1/jobs/{segment(job_id(job))}/attempts"
        return (await self._http.call("GET", path, wire.AttemptList)).attempts

    async def log_page(
        self, job: JobRef, *, after: int = 0, attempt: int | None = None, wait_ms: int = 0
    ) -> wire.JobLogs:
        """The job's log lines after the cursor `after` (with `wait_ms`: once there are
        some, or the job's log is complete, or that time passes)."""
        wait_ms = max(0, min(wait_ms, MAX_WAIT_MS))
        pairs = (("after", after), ("attempt", attempt), ("wait_ms", wait_ms or None))
        params = {key: str(value) for key, value in pairs if value is not None}
        path = f"/v1/jobs/{segment(job_id(job))}/logs"
        return await self._http.call(
            "GET", path, wire.JobLogs, params=params, wait_s=wait_ms / 1000
        )

    def logs(
        self, job: JobRef, *, follow: bool = False, attempt: int | None = None, after: int = 0
    ) -> AsyncIterator[wire.StoredLogLine]:
        """The job's log lines in order; with `follow`, until the job has ended."""
        ident = job_id(job)

        async def fetch(cursor: int, wait_ms: int) -> wire.JobLogs:
            return await self.log_page(ident, after=cursor, attempt=attempt, wait_ms=wait_ms)

        return log_lines(fetch, after=after, follow=follow)

    # ------------------------------------------------------------ changing jobs

    async def cancel(self, job: JobRef) -> m.JobView:
        """End a queued or running job `cancelled`; `Conflict` if it has already ended."""
        path = f"/v1/jobs/{segment(job_id(job))}/cancel"
        return await self._http.call("POST", path, m.JobView, idempotent=False)

    async def retry(self, job: JobRef) -> m.JobView:
        """Queue a failed or cancelled job again; `Conflict` otherwise."""
        path = f"/v1/jobs/{segment(job_id(job))}/retry"
        return await self._http.call("POST", path, m.JobView, idempotent=False)


def _first(failures: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to raise when several concurrent requests failed (they share a cause)."""
    first = failures.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first
