"""The copies of a hedged claim still out after another copy answered with no jobs.

The coordinator may act on such a copy (a delayed request still reaches it): when the
winning answer brought no jobs, a copy arriving later may claim some under the same
`claim_id` (once it handed jobs out, it hands out nothing new for that id, so copies of
a claim that brought jobs are not followed). Jobs handed out that the bot never starts
would hold its slots at the coordinator until its heartbeats give them back. So:

- a late copy that answers has its jobs started (none the bot already runs);
- a late copy that fails on the way (it may have acted, its answer lost) is asked
  again under the same `claim_id`, after a short jittered backoff and only while the
  coordinator is reachable (the circuit closed), a few times at most: the coordinator
  hands back what it gave out for it, or claims for free slots like any claim.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

import msgspec

from bot.errors import CoordinatorError
from bot.link.backoff import Backoff
from bot.link.http import Api
from bot.state import Job
from bot.work.runner import JobRunner, ReportSink
from botfleet.clock import Clock
from botfleet.protocol import messages as m

log = logging.getLogger(__name__)

MAX_REPEATS = 5  # of a late copy that failed: each repeat may be lost too
REPEAT_MAX_BACKOFF_MS = 2_000


class LateClaims:
    def __init__(
        self,
        *,
        api: Api,
        runner: JobRunner,
        take: Callable[[list[Job], ReportSink | None, bool], object],
        clock: Clock,
        rng: random.Random,
        min_backoff_ms: float,
        reachable: Callable[[], bool],
        on_change: Callable[[], None],
    ) -> None:
        self._api = api
        self._runner = runner
        self._take = take  # start the jobs, or hold them when the claim prefetched
        self._clock = clock
        self._rng = rng
        self._min_backoff_ms = min(min_backoff_ms, REPEAT_MAX_BACKOFF_MS)
        self._reachable = reachable  # the circuit is closed
        self._on_change = on_change  # new jobs started: the pipeline's activity changed
        self._out: set[asyncio.Future[m.ClaimResponse] | asyncio.Future[None]] = set()
        self.repeated = 0  # late copies asked again after a failure (metrics, tests)

    def __len__(self) -> int:
        return len(self._out)

    def follow(
        self,
        late: list[asyncio.Future[m.ClaimResponse]],
        request: m.ClaimRequest,
        sink: ReportSink | None,
    ) -> None:
        """Look at each of `late` when it ends (copies of `request`, answered with no jobs)."""
        repeat = msgspec.structs.replace(
            request, wait_ms=0, reports=msgspec.UNSET, instance_id=msgspec.UNSET
        )
        answered: set[str] = set()  # the jobs one of the copies brought
        for call in late:
            self._watch(call, repeat, answered, sink)

    def ignore(self, late: list[asyncio.Future[m.ClaimResponse]]) -> None:
        """Copies whose answers can bring nothing new (their claim brought jobs): only
        their outcome is read when they end, so that no error goes unretrieved; a stop
        cancels them like the others."""
        for call in late:
            self._out.add(call)
            call.add_done_callback(self._out.discard)
            call.add_done_callback(_read_outcome)

    def cancel(self) -> None:
        """The bot stops taking work: nobody would start what they bring."""
        for call in list(self._out):
            call.cancel()

    def _watch(
        self,
        call: asyncio.Future[m.ClaimResponse],
        repeat: m.ClaimRequest,
        answered: set[str],
        sink: ReportSink | None,
    ) -> None:
        def ended(done: asyncio.Future[m.ClaimResponse]) -> None:
            self._out.discard(done)
            if done.cancelled():
                return
            error = done.exception()
            if error is None:
                self._start_new(done.result(), answered, sink, bool(repeat.prefetch))
            elif isinstance(error, CoordinatorError) and error.transient:
                log.info("a hedged claim's late copy failed (%s): asking again", error)
                self.repeated += 1
                task = asyncio.ensure_future(self._ask_again(repeat, answered, sink))
                self._out.add(task)
                task.add_done_callback(self._out.discard)
            else:
                log.debug("a hedged claim's late copy failed: %s", error)

        self._out.add(call)
        call.add_done_callback(ended)

    async def _ask_again(
        self, repeat: m.ClaimRequest, answered: set[str], sink: ReportSink | None
    ) -> None:
        backoff = Backoff(self._min_backoff_ms, REPEAT_MAX_BACKOFF_MS, self._rng)
        tries = 0
        while tries < MAX_REPEATS:
            await self._clock.sleep(backoff.next_s())
            if not self._reachable():
                backoff.reset()  # the probe finds the coordinator first; then try soon
                continue
            tries += 1
            try:
                answer = await self._api.claim(repeat)
            except CoordinatorError as exc:
                if not exc.transient:
                    return
                continue
            self._start_new(answer, answered, sink, bool(repeat.prefetch))
            return
        log.warning(
            "a hedged claim's late copy went unanswered %d times; the next heartbeats give "
            "back whatever it was handed",
            MAX_REPEATS,
        )

    def _start_new(
        self,
        answer: m.ClaimResponse,
        answered: set[str],
        sink: ReportSink | None,
        prefetching: bool,
    ) -> None:
        running = self._runner.running
        fresh = [job for job in answer.jobs if job.id not in answered and job.id not in running]
        jobs = []
        for claimed in fresh:
            log.info("job %s came with a hedged claim's later answer", claimed.id)
            answered.add(claimed.id)
            jobs.append(
                Job.from_claimed(
                    claimed, on_progress=running.note_progress, on_log=self._runner.log_sink
                )
            )
        if jobs:
            self._take(jobs, sink, prefetching)
            self._on_change()


def _read_outcome(call: asyncio.Future[m.ClaimResponse]) -> None:
    if not call.cancelled() and call.exception() is not None:
        log.debug("a hedged claim's late copy failed: %s", call.exception())
