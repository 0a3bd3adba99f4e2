"""The claim loop: keeps every free slot busy, and waits on one condition when it cannot.

It waits for room (a free slot, work allowed) or the stop, whichever comes first;
after an empty answer, for a hint of new work (`wake`), the poll interval or the stop,
at once. It plans each claim (how many jobs, for which operations, with prefetch) and
sends it with `ClaimCall` (bot/work/claim_call.py: reports riding on it, hedging, the
jobs it brings). With `claim_id`, a claim whose answer was not read is retried under
the same id, so the coordinator hands back what it gave out: at once while the retry
budget lasts (a lossy network), else after a backoff (an outage, load shedding).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

from bot.errors import AuthError, CoordinatorError, NotFoundError, OverloadedError
from bot.link.backoff import Backoff, RetryBudget
from bot.link.http import Api
from bot.link.session import Session
from bot.reports.queue import Reporting
from bot.settings import Settings
from bot.waiting import sleep_or
from bot.work.claim_call import ClaimCall
from bot.work.hedge import Hedged
from bot.work.held import HeldJobs
from bot.work.hooks import SchedulerHooks
from bot.work.late_claims import LateClaims
from bot.work.prefetch import ClaimPlan, PrefetchPolicy
from bot.work.runner import JobRunner, JobTask, ReportSink
from botfleet.clock import Clock
from botfleet.protocol import messages as m

log = logging.getLogger(__name__)

# Loop turns in which a job with no I/O ends and queues its report, so that the report
# rides on the next claim instead of waiting behind a long-poll that left first.
JOB_FIRST_STEPS = 2
MAX_LONG_POLL_MS = 30_000  # the protocol's bound on `wait_ms`
# Failed claims in a row retried at once (budget permitting) before the bot backs off.
MAX_AT_ONCE = 4


class Claims:
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
        prefetch: PrefetchPolicy,
    ) -> None:
        self._held = held  # prefetched jobs not started yet
        self._prefetch = prefetch
        # A buffer-only claim found nothing: no more of them until a slot frees up and a
        # claim for the slots (which may wait for work) goes out.
        self._buffer_dry = False
        # With both short and other operations, claims for every operation and claims
        # for the short ones alone (with prefetch) take turns.
        self._short_turn = True
        self.round_trip = prefetch.round_trip  # of claims answered without waiting for work
        self._session = session
        self._settings = settings
        self._clock = clock
        self._hooks = hooks
        self._runner = runner
        self._reporting = reporting
        self._on_change = on_change  # the pipeline's activity may have changed
        self.wake = asyncio.Event()  # a hint of new work: assignment changed, work allowed again
        self.waiting_for_room = False  # parked until a slot frees up (or a wake)
        self._at_once = 0  # failed claims of this streak asked again at once
        self._retry_budget = RetryBudget(settings.retry_budget_ratio)
        self._call = ClaimCall(
            api=api,
            session=session,
            settings=settings,
            clock=clock,
            rng=rng,
            hooks=hooks,
            runner=runner,
            reporting=reporting,
            on_change=on_change,
            held=held,
            retry_budget=self._retry_budget,
            round_trip=self.round_trip,
        )
        low, high = settings.min_backoff_ms, settings.max_backoff_ms
        self._empty_backoff = Backoff(low, min(high, settings.idle_poll_max_ms), rng)
        self._error_backoff = Backoff(low, high, rng)

    @property
    def call(self) -> asyncio.Future[Hedged[m.ClaimResponse]] | None:
        """The claim on its way."""
        return self._call.call

    @property
    def claim_id(self) -> str | None:
        """The id of the claim whose answer has not been read yet (None: the next is new)."""
        return self._call.claim_id

    @property
    def late(self) -> LateClaims:
        """Hedged copies still out."""
        return self._call.late

    @property
    def hedged(self) -> int:
        """Claims sent twice (metrics, tests)."""
        return self._call.hedged

    def plan(self) -> ClaimPlan | None:
        """The claim to make now; None when paused, full, or nothing to claim."""
        session = self._session
        operations = session.claimable()
        if session.assignment.paused or not operations:
            return None
        slots = self._runner.slots
        if not self.prefetching():
            free = min(slots.free, session.claim_batch_size)
            return ClaimPlan(operations, free) if free else None
        return self._prefetch.plan(
            operations,
            free=slots.free,
            capacity=slots.capacity,
            held=len(self._held),
            batch_size=session.claim_batch_size,
            refill_allowed=not self._buffer_dry,
            short_turn=self._short_turn,
        )

    def prefetching(self) -> bool:
        """Claims may go beyond the free slots: the coordinator offers `prefetch`, and
        BOT_PREFETCH is not 0."""
        return self._session.has(m.FEATURE_PREFETCH) and self._prefetch.setting != 0

    def limit(self) -> int:
        """How many jobs to ask for now: 0 when paused, full, or nothing to claim."""
        plan = self.plan()
        return 0 if plan is None else plan.limit

    def will_carry(self) -> bool:
        """A claim is about to leave and will carry the pending reports: the loop waits for
        room and there is some (a finished job frees its slot before its report is queued)."""
        return (
            self.waiting_for_room
            and self._call.carries()
            and self._hooks.may_claim()
            and self.limit() > 0
        )

    # ------------------------------------------------------------ the loop

    async def run(self, stop: asyncio.Event) -> None:
        """Keep every free slot busy; back off on empty answers and on errors."""
        try:
            await self._loop(stop)
        finally:
            self.late.cancel()  # the bot stops: nobody would start their jobs

    async def _loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if len(self._held):  # held jobs may start now (work allowed again, resized)
                self._held.feed()
            may_claim = self._hooks.may_claim()
            plan = self.plan() if may_claim else None
            if plan is None:
                if not may_claim:
                    # Claims stopped (the circuit opened, a quarantine): the failures that
                    # came before were the outage's, so the next claim starts a new streak.
                    self._at_once = 0
                    self._error_backoff.reset()
                await self._wait_for_room(stop)
                continue
            # A claim that prefetches does not wait for work (see `ClaimPlan.may_wait`).
            long_poll = self._session.has(m.FEATURE_LONG_POLL) and plan.may_wait
            wait_ms = min(MAX_LONG_POLL_MS, self._settings.long_poll_ms) if long_poll else 0
            started = self._clock.monotonic()
            try:
                got, prompt = await self._claim(plan, wait_ms, self._reporting.queue)
            except CoordinatorError as exc:
                await self._failed(exc, stop)
                continue
            self._error_backoff.reset()
            self._retry_budget.earn()
            self._at_once = 0
            if got:
                self._buffer_dry = False
                self._empty_backoff.reset()
                for _ in range(JOB_FIRST_STEPS):
                    await asyncio.sleep(0)
                continue
            if not plan.may_wait:
                self._buffer_dry = True  # next, a plain claim for every operation (it may wait)
                continue
            held = self._clock.monotonic() - started >= wait_ms / 2000.0
            if long_poll and (held or prompt):
                await asyncio.sleep(0)  # the coordinator waited for work: ask again at once
                continue
            self.wake.clear()
            await sleep_or(self._clock, self._empty_backoff.next_s(), stop, self.wake)

    async def _wait_for_room(self, stop: asyncio.Event) -> None:
        """Wait for a free slot, a hint of new work or the stop, whichever comes first."""
        self.wake.clear()
        self._runner.slots.changed.clear()
        if self._hooks.may_claim() and self.limit():
            return  # room came between the look and the clears
        self.waiting_for_room = True
        try:
            await sleep_or(self._clock, None, stop, self.wake, self._runner.slots.changed)
        finally:
            self.waiting_for_room = False
            self._reporting.claim_left.set()  # reports waiting for a claim look again

    async def _failed(self, exc: CoordinatorError, stop: asyncio.Event) -> None:
        if isinstance(exc, NotFoundError | AuthError):
            log.warning("claim refused (%s): registering again", exc)
            if await self._hooks.renew(self._session.generation):
                return
        if self._repeat_at_once(exc):
            self._at_once += 1
            log.info("claim answer not read (%s); asking again at once", exc)
            return
        delay = self._error_backoff.after(exc)
        log.warning("claim failed (%s); next try in %.1f s", exc, delay)
        self._hooks.backing_off(f"claim failed: {exc}")
        try:
            await sleep_or(self._clock, delay, stop)
        finally:
            self._hooks.backing_off(None)

    def _repeat_at_once(self, exc: CoordinatorError) -> bool:
        """Whether to repeat a failed claim without waiting: a failure whose answer may
        have been lost on the way (no answer, a 5xx, or a 429/503 that names no time),
        among the first `MAX_AT_ONCE` of a streak, while the retry budget lasts. Under the
        same `claim_id` the coordinator hands back what it gave out, so a lost answer
        costs one request; a longer streak, or failures beyond the budget, back off."""
        if self._at_once >= MAX_AT_ONCE or self.claim_id is None or not exc.transient:
            return False
        if isinstance(exc, OverloadedError) and exc.retry_after_s is not None:
            return False
        return self._retry_budget.spend()

    # ------------------------------------------------------------ one claim

    async def claim(
        self, limit: int, wait_ms: int = 0, sink: ReportSink | None = None
    ) -> list[JobTask]:
        """Claim up to `limit` jobs for the free slots and start them (each reports to
        `sink`); their tasks."""
        started: list[JobTask] = []
        plan = ClaimPlan(self._session.claimable(), limit)
        await self._claim(plan, wait_ms, sink, started)
        return started

    async def _claim(
        self,
        plan: ClaimPlan,
        wait_ms: int,
        sink: ReportSink | None,
        started: list[JobTask] | None = None,
    ) -> tuple[bool, bool]:
        """Send the claim `plan` describes (see `ClaimCall.send`)."""
        self._short_turn = not self._short_turn
        return await self._call.send(plan, wait_ms, sink, started)

    def abort(self) -> bool:
        """Give up a claim on its way (see `ClaimCall.abort`); True when there was one."""
        return self._call.abort()
