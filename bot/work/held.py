"""The local buffer of prefetched jobs: claimed, not started yet (feature `prefetch`).

Jobs a claim brings beyond the free slots wait here in claim order; each slot that frees
up starts the next one at once (`feed`), while the bot may take work. A job still here
`hold_s` after it came goes back to the queue (`run`, in batches), so a job stuck
behind long ones goes to a bot with a free slot instead; on a drain every one goes back
(`release_all`). Going back costs no attempt (`POST /v1/jobs/release`).

The heartbeat lists these jobs as `held` (their leases are kept, and the coordinator does
not take them for lost claim answers), including those on their way back. If the bot
dies, their leases run out and they are queued again, as running ones are.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bot.errors import CoordinatorError
from bot.link.backoff import Backoff
from bot.link.http import Api
from bot.link.session import Session
from bot.state import Job
from bot.waiting import sleep_or
from bot.work.runner import JobRunner, JobTask, ReportSink
from botfleet.clock import Clock
from botfleet.protocol import prefetch as p

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Held:
    job: Job
    sink: ReportSink | None
    held_at: float  # clock.monotonic() when it came


class HeldJobs:
    """Prefetched jobs in claim order, started as slots free up or given back."""

    def __init__(
        self,
        *,
        api: Api,
        session: Session,
        runner: JobRunner,
        clock: Clock,
        hold_s: float,
        backoff: Backoff,
        may_start: Callable[[], bool],
    ) -> None:
        self._api = api
        self._session = session
        self._runner = runner
        self._clock = clock
        self.hold_s = hold_s
        self._backoff = backoff  # after a release that failed
        self._may_start = may_start  # work allowed (not paused, draining, quarantined…)
        self._queue: collections.deque[Held] = collections.deque()
        self._queued: set[str] = set()  # the ids in `_queue`: a claim checks each job it gets
        self._returning: dict[str, Job] = {}  # on their way back: still ours until answered
        self.changed = asyncio.Event()  # the first job came into an empty buffer
        self.released = 0  # jobs given back (metrics, tests)
        self.prefetched: collections.Counter[str] = collections.Counter()  # waited here, by op

    def __len__(self) -> int:
        return len(self._queue)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._queued or job_id in self._returning

    def ids(self) -> list[str]:
        """The heartbeat's `held`: jobs here and jobs on their way back."""
        return [held.job.id for held in self._queue] + list(self._returning)

    def hold(self, jobs: Iterable[Job], sink: ReportSink | None) -> list[JobTask]:
        """Take claimed jobs in, after those already here; start what the slots allow."""
        now = self._clock.monotonic()
        jobs = list(jobs)
        was_empty = not self._queue
        self._queue.extend(Held(job, sink, now) for job in jobs)
        self._queued.update(job.id for job in jobs)
        started = self.feed()
        # Those that did not start at once wait here: the last ones, in claim order.
        waiting = min(len(jobs), len(self._queue))
        if waiting:
            self.prefetched.update(job.op for job in jobs[len(jobs) - waiting :])
            if was_empty:
                self.changed.set()
        return started

    def feed(self) -> list[JobTask]:
        """Start held jobs, oldest first, while a slot is free and work is allowed."""
        queue, slots = self._queue, self._runner.slots
        if not queue or not slots.free or not self._may_start():
            return []
        started = []
        while queue and slots.free:
            held = queue.popleft()
            self._queued.discard(held.job.id)
            started.append(self._runner.start(held.job, held.sink))
        return started

    def drop(self, job_id: str) -> bool:
        """Forget a held job (an operator cancelled it: it is final, nothing to report)."""
        for held in self._queue:
            if held.job.id == job_id:
                self._queue.remove(held)
                self._queued.discard(job_id)
                return True
        return False

    # ------------------------------------------------------------ giving jobs back

    def _expired(self) -> list[Held]:
        now, hold_s, queue = self._clock.monotonic(), self.hold_s, self._queue
        expired = []
        while queue and queue[0].held_at + hold_s <= now:
            expired.append(queue.popleft())
            self._queued.discard(expired[-1].job.id)
        return expired

    async def run(self, stop: asyncio.Event) -> None:
        """Give back, in batches, the jobs held past the hold time, until `stop`."""
        while not stop.is_set():
            self.changed.clear()
            queue = self._queue
            wait_s = None if not queue else queue[0].held_at + self.hold_s - self._clock.monotonic()
            if wait_s is None or wait_s > 0:
                await sleep_or(self._clock, wait_s, stop, self.changed)
                continue
            expired = self._expired()
            kept = await self._give_back(expired, "not started within the hold time")
            if kept:
                self._put_back(kept)
                await sleep_or(self._clock, self._backoff.next_s(), stop)

    async def release_all(self, why: str) -> int:
        """Give back every held job (a drain): once, since a drain does not wait on the
        network; what does not go back has its lease run out. How many went back."""
        held = list(self._queue)
        self._queue.clear()
        self._queued.clear()
        if not held:
            return 0
        kept = await self._give_back(held, why)
        return len(held) - len(kept)

    async def _give_back(self, held: list[Held], why: str) -> list[Held]:
        """Release these jobs (in chunks of the protocol's maximum); those whose release
        could not be sent, which are still ours."""
        for held_job in held:
            self._returning[held_job.job.id] = held_job.job
        sent = 0
        try:
            for start in range(0, len(held), p.MAX_RELEASE_JOBS):
                chunk = held[start : start + p.MAX_RELEASE_JOBS]
                request = p.ReleaseRequest(
                    instance_id=self._session.instance_id,
                    jobs=[p.ReleaseItem(job_id=h.job.id, attempt=h.job.attempt) for h in chunk],
                )
                answer = await self._api.release(request)
                for result in answer.results:
                    if result.status == "released":
                        self.released += 1
                    else:  # its lease ran out meanwhile, or the job ended otherwise
                        log.info("held job %s: release answered %s", result.job_id, result.status)
                sent += len(chunk)
        except CoordinatorError as exc:
            log.warning("could not give back %d held job(s) (%s): %s", len(held) - sent, why, exc)
        finally:
            # Answered: not ours any more; not sent: they go back in line (the caller's).
            for held_job in held:
                self._returning.pop(held_job.job.id, None)
        if sent == len(held):
            self._backoff.reset()
            log.debug("gave back %d held job(s): %s", len(held), why)
        return held[sent:]

    def _put_back(self, held: list[Held]) -> None:
        """Jobs whose release could not be sent: first in line again, as they were."""
        self._queue.extendleft(reversed(held))
        self._queued.update(held_job.job.id for held_job in held)
        self.feed()
