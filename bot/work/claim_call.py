"""One claim: the request, the reports riding on it, hedging, and the jobs it brings.

With `report_on_claim`, a claim carries the finished reports that wait, so a busy bot
reports and claims in one call. With `claim_id`, a claim whose answer was not read keeps
its id until one is, so a retry gets back what the coordinator gave out. A claim
expected to answer at once that is late is hedged: sent again under the same id, the
first answer wins; when it brought no jobs, a late one's jobs are started too. The jobs
that come are started, or held for later when the claim prefetched.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Callable

import msgspec

from bot.errors import CoordinatorError, OverloadedError, TooLargeError
from bot.link.backoff import RetryBudget
from bot.link.http import Api
from bot.link.session import Session
from bot.reports.queue import Reporting
from bot.settings import Settings
from bot.state import Job
from bot.work.hedge import Hedged, RoundTrips, hedged_call
from bot.work.held import HeldJobs
from bot.work.hooks import SchedulerHooks
from bot.work.late_claims import LateClaims
from bot.work.prefetch import ClaimPlan, RoundTrip
from bot.work.runner import JobRunner, JobTask, ReportSink
from botfleet.clock import Clock
from botfleet.protocol import encode
from botfleet.protocol import messages as m

log = logging.getLogger(__name__)


class ClaimCall:
    def __init__(
        self,
        *,
        api: Api,
        session: Session,
        settings: Settings,
        clock: Clock,
        rng: random.Random,
        hooks: SchedulerHooks,
        runner: JobRunner,
        reporting: Reporting,
        on_change: Callable[[], None],
        held: HeldJobs,
        retry_budget: RetryBudget,
        round_trip: RoundTrip,
    ) -> None:
        self._api = api
        self._session = session
        self._settings = settings
        self._clock = clock
        self._hooks = hooks
        self._runner = runner
        self._reporting = reporting
        self._on_change = on_change  # the pipeline's activity may have changed
        self._held = held  # prefetched jobs not started yet
        # Shared with the claim loop: a hedged copy that failed is replaced under it too.
        self._retry_budget = retry_budget
        self._round_trip = round_trip  # of claims answered without waiting for work
        self.call: asyncio.Future[Hedged[m.ClaimResponse]] | None = None  # the claim on its way
        # The id of the claim whose answer has not been read yet: kept until one is, so a
        # retry after a lost answer repeats it (None: the next claim is a new one).
        self.claim_id: str | None = None
        self._work_waiting = False  # the last answer brought jobs: the next should be quick
        self.late = LateClaims(  # hedged copies still out
            api=api,
            runner=runner,
            take=self.take,
            clock=clock,
            rng=rng,
            min_backoff_ms=settings.min_backoff_ms,
            reachable=hooks.reachable,
            on_change=on_change,
        )
        self.hedged = 0  # claims sent twice (metrics, tests)
        self.round_trips = RoundTrips()  # of claims answered at once: when to hedge

    def carries(self) -> bool:
        """Claims take the finished reports along (`report_on_claim`)."""
        return self._session.has(m.FEATURE_REPORT_ON_CLAIM) and self._hooks.reachable()

    def take(self, jobs: list[Job], sink: ReportSink | None, prefetching: bool) -> list[JobTask]:
        """Start claimed jobs, or hold them; the tasks of those started now."""
        if prefetching or len(self._held):
            # In claim order behind those held already; what the slots allow starts now.
            return self._held.hold(jobs, sink)
        # A plain claim: every job starts, even if the slots shrank meanwhile.
        return [self._runner.start(job, sink) for job in jobs]

    async def send(
        self,
        plan: ClaimPlan,
        wait_ms: int,
        sink: ReportSink | None,
        started: list[JobTask] | None = None,
    ) -> tuple[bool, bool]:
        """Whether jobs came (started, or held for later; the tasks of those started go
        to `started`), and whether the claim was sent not to wait although `wait_ms` asked
        it to (it carried reports, or repeated a claim_id)."""
        session, reporting = self._session, self._reporting
        if session.bot_id is None:
            raise RuntimeError("claim() before registration")
        limit = plan.limit
        request = m.ClaimRequest(
            bot_id=session.bot_id, operations=list(plan.operations), limit=limit
        )
        if plan.prefetch:
            request.prefetch = plan.prefetch
        riders = reporting.take_riders(self._room(request)) if self.carries() else []
        reporting.claim_left.set()
        repeat = False
        if session.has(m.FEATURE_CLAIM_ID):
            repeat = self.claim_id is not None
            if self.claim_id is None:
                self.claim_id = uuid.uuid4().hex
            request.claim_id = self.claim_id
        # Reports on board: answer at once, so they are not held by a long-poll. A repeated
        # claim_id too: when it handed jobs out it gets back those still running and claims
        # nothing new, so a long-poll would hold it (and the bot) for the whole wait once
        # the heartbeat gave them up; asked again at once, the next claim is a new one.
        prompt = bool(riders) or repeat
        request.wait_ms = 0 if prompt else wait_ms
        if riders:
            request.instance_id, request.reports = session.instance_id, riders
        hedge_s = self._hedge_after_s(request)
        sent = self._clock.monotonic()
        call = asyncio.ensure_future(
            hedged_call(lambda: self._api.claim(request), self._clock, hedge_s, self._retry_copy)
        )
        self.call = call
        self._on_change()
        try:
            try:
                hedged = await call
            except TooLargeError:
                if not riders:
                    raise
                log.info("claim with %d report(s) too large; they go on their own", len(riders))
                reporting.ride_back(riders, alone=True)
                return False, True  # the reports go alone; the claim is asked again at once
            except asyncio.CancelledError:
                reporting.ride_back(riders)
                current = asyncio.current_task()
                if current is not None and current.cancelling() > 0:
                    raise  # this task is being cancelled, not just the claim
                log.info("claim on its way given up")
                return False, bool(riders)
            except Exception:  # a CoordinatorError, or anything else: the reports stay ours
                reporting.ride_back(riders)
                raise
            self.claim_id = None  # answered: the next claim is a new one
            answer = hedged.answer
            work_was_waiting, self._work_waiting = self._work_waiting, bool(answer.jobs)
            if hedged.hedged:
                self.hedged += 1
            elif hedge_s is not None:  # expected at once, and it came: a round trip to learn
                self.round_trips.add(self._clock.monotonic() - sent)
            if not request.wait_ms or (work_was_waiting and answer.jobs):
                # Answered without waiting for work: what a claim costs, to size prefetch.
                self._round_trip.add(self._clock.monotonic() - sent)
            if hedged.late and not answer.jobs:
                # Only then can a late copy bring jobs: once a claim_id handed any out, the
                # coordinator hands out nothing new for it (its copies get the same jobs).
                self.late.follow(hedged.late, request, sink)
            elif hedged.late:
                self.late.ignore(hedged.late)
            if riders:
                results = answer.results if answer.results is not msgspec.UNSET else []
                reporting.rode(riders, results)
            if len(answer.jobs) > limit:
                log.warning("asked for %d jobs, got %d: running them all", limit, len(answer.jobs))
            running, held = self._runner.running, self._held
            jobs = []
            for claimed in answer.jobs:
                if claimed.id in running or (len(held) and claimed.id in held):
                    log.warning("job %s handed out again while it is here; ignored", claimed.id)
                    continue
                jobs.append(
                    Job.from_claimed(
                        claimed, on_progress=running.note_progress, on_log=self._runner.log_sink
                    )
                )
            tasks = self.take(jobs, sink, prefetching=bool(plan.prefetch))
            if started is not None:
                started.extend(tasks)
            return bool(jobs), prompt
        finally:
            # Started jobs show first: CLAIM -> PROCESS, never CLAIM -> IDLE -> PROCESS.
            self.call = None
            self._on_change()

    def _retry_copy(self, error: BaseException) -> bool:
        """Whether a hedged claim's copy that failed while the other is still out (maybe
        delayed) is replaced at once: as a failed claim would be asked again."""
        if not isinstance(error, CoordinatorError) or not error.transient:
            return False
        if isinstance(error, OverloadedError) and error.retry_after_s is not None:
            return False
        return self._retry_budget.spend()

    def _hedge_after_s(self, request: m.ClaimRequest) -> float | None:
        """When to send a claim again if it has not answered (None: wait for it): only a
        claim under a `claim_id` (a copy gets the same jobs), and only one the coordinator
        should answer at once - work was waiting, or it does not wait (reports ride on
        it); a long-poll held while the queue is empty is on time. After twice the usual
        round trip (see `RoundTrips`), at most `claim_hedge_ms`."""
        hedge_ms = self._settings.claim_hedge_ms
        if hedge_ms <= 0 or request.claim_id is msgspec.UNSET:
            return None
        if request.wait_ms and not self._work_waiting:
            return None
        return self.round_trips.hedge_after_s(hedge_ms / 1000.0)

    def _room(self, request: m.ClaimRequest) -> int | None:
        """Bytes left for reports in `request` under the coordinator's limit (None: unknown)."""
        limit = self._session.max_body_bytes
        if limit is None:
            return None
        envelope = m.ClaimRequest(
            bot_id=request.bot_id,
            operations=request.operations,
            limit=request.limit,
            wait_ms=0,
            instance_id=self._session.instance_id,
            reports=[],
        )
        return limit - len(encode(envelope))

    def abort(self) -> bool:
        """Give up a claim on its way (held open by long-poll): the bot stopped taking work.

        The coordinator hands out nothing to a claim whose connection closed, so whatever
        arrives for these operations goes to another bot. True when there was one.
        """
        self.late.cancel()
        call = self.call
        if call is None or call.done():
            return False
        call.cancel()
        return True
