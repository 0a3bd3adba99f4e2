"""Waiting for jobs to end with `GET /v1/jobs/{id}?wait_ms=` (the server holds the
request until the job ends), never by polling in a loop of sleeps."""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from botfleet.client.errors import JobCancelled, JobFailed, WaitTimeout
from botfleet.clock import Clock
from botfleet.protocol import messages as m

MAX_WAIT_MS = 30_000  # the protocol: GET /v1/jobs/{id}?wait_ms= at most 30000
WATCH_WAIT_MS = 5_000  # per request when watching many: counts stay fresh
WATCH_CONCURRENCY = 8

GetJob = Callable[[str, int], Awaitable[m.JobView]]


class Deadline:
    """`timeout_s` from now on `clock`, or never."""

    def __init__(self, clock: Clock, timeout_s: float | None) -> None:
        self._clock = clock
        self._at = math.inf if timeout_s is None else clock.monotonic() + timeout_s

    def remaining_s(self) -> float:
        return max(0.0, self._at - self._clock.monotonic())

    def wait_ms(self, most_ms: int) -> int:
        """How long the next server-side wait may last."""
        remaining_s = self.remaining_s()
        return most_ms if math.isinf(remaining_s) else min(most_ms, math.ceil(remaining_s * 1000))

    @property
    def passed(self) -> bool:
        return self.remaining_s() <= 0


async def wait_one(
    get: GetJob, job_id: str, deadline: Deadline, timeout_s: float | None
) -> m.JobView:
    """The job once it has ended; `WaitTimeout` when the deadline passes first."""
    while True:
        view = await get(job_id, deadline.wait_ms(MAX_WAIT_MS))
        if view.state in m.TERMINAL_STATES:
            return view
        if deadline.passed:
            raise WaitTimeout(f"job {job_id} is still {view.state} after {timeout_s:g} s")


def outcome(view: m.JobView) -> dict[str, Any]:
    """A finished job's result, or the error its state stands for."""
    if view.state == "failed":
        raise JobFailed(view)
    if view.state == "cancelled":
        raise JobCancelled(view)
    return view.result or {}


async def watch(
    get: GetJob,
    ids: Sequence[str],
    deadline: Deadline,
    wait_ms: int = WATCH_WAIT_MS,
    concurrency: int = WATCH_CONCURRENCY,
) -> AsyncIterator[m.JobView]:
    """Every view seen, as it is seen, until each job has ended (then its last view).

    A few workers each wait on one pending job at a time and put it back at the end
    of the line when it is not done yet. Jobs mostly end in the order they were
    queued, so the job waited on is usually the next to end, and the ones after it
    are already done by the time they are asked about.
    """
    pending: deque[str] = deque(dict.fromkeys(ids))
    total = unfinished = len(pending)
    seen: asyncio.Queue[m.JobView | BaseException] = asyncio.Queue()

    async def worker() -> None:
        try:
            while pending and not deadline.passed:
                job_id = pending.popleft()
                view = await get(job_id, deadline.wait_ms(wait_ms))
                if view.state not in m.TERMINAL_STATES:
                    pending.append(job_id)
                seen.put_nowait(view)
        except Exception as exc:  # handed to the consumer, who raises it
            seen.put_nowait(exc)

    workers = [asyncio.create_task(worker()) for _ in range(min(concurrency, unfinished))]
    try:
        while unfinished:
            if seen.empty():
                left_s = deadline.remaining_s()
                try:
                    item = await asyncio.wait_for(
                        seen.get(), None if math.isinf(left_s) else left_s
                    )
                except TimeoutError:
                    raise WaitTimeout(f"{unfinished} of {total} jobs not done in time") from None
            else:
                item = seen.get_nowait()
            if isinstance(item, BaseException):
                raise item
            if item.state in m.TERMINAL_STATES:
                unfinished -= 1
            yield item
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
