"""Claim, run, report: the work pipeline of one bot, made of its claim loop (`Claims`),
its job runner (`JobRunner`), its report queue (`Reporting`) and its progress loop.

The running bot runs the loops side by side, so a slot that frees up is refilled at
once and finished reports are delivered in groups while other jobs still run.
`tick()` takes one turn of the same steps, to its end (tests, simple embedding).
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass

from bot.agent.watchdog import Watchdog
from bot.joblog.buffer import LogBuffer, Redactor
from bot.joblog.capture import install_handler
from bot.joblog.shipping import LogShipper
from bot.jobs import Registry
from bot.link.backoff import Backoff
from bot.link.http import Api
from bot.link.session import Session
from bot.reports.delivery import Reporter
from bot.reports.outbox import Outbox
from bot.reports.queue import Reporting
from bot.settings import Settings
from bot.state import BotState
from bot.work.claims import Claims
from bot.work.held import HeldJobs
from bot.work.hooks import SchedulerHooks, StandaloneHooks
from bot.work.prefetch import PrefetchPolicy, RoundTrip
from bot.work.progress import progress_loop
from bot.work.runner import JobRunner
from bot.work.slots import Slots
from botfleet.clock import Clock


@dataclass(frozen=True, slots=True)
class TickResult:
    claimed: int = 0
    succeeded: int = 0
    failed: int = 0
    delivered: int = 0  # reports the coordinator accepted (this tick's and the outbox's)
    kept: int = 0  # reports left in the outbox


class Scheduler:
    def __init__(
        self,
        *,
        api: Api,
        registry: Registry,
        session: Session,
        outbox: Outbox,
        clock: Clock,
        settings: Settings,
        rng: random.Random | None = None,
        hooks: SchedulerHooks | None = None,
        watchdog: Watchdog | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.api = api
        self.session = session
        self.outbox = outbox
        self.clock = clock
        self.settings = settings
        self.hooks: SchedulerHooks = hooks or StandaloneHooks()
        # Without the bot's watchdog task, deadlines are set but never checked.
        self.watchdog = (
            watchdog if watchdog is not None else Watchdog(clock, settings.watchdog_tick_s)
        )
        rng = rng or random.Random()
        self._shown: BotState | None = None  # the activity the hooks were last told
        self.slots = Slots(session.assignment.max_concurrency)
        # Handlers' log lines: the secrets are read here, once, never kept in settings.
        redact = Redactor.from_environment(
            settings.redact, os.environ if environ is None else environ
        )
        self.logs = LogBuffer(clock, settings.log_buffer_lines, redact)
        install_handler()
        self.log_shipper = LogShipper(
            api=api, session=session, buffer=self.logs, clock=clock, hooks=self.hooks
        )
        self.runner = JobRunner(
            registry=registry,
            clock=clock,
            slots=self.slots,
            hooks=self.hooks,
            on_change=self._activity_changed,
            logs=self.logs,
        )
        self.running, self.threads = self.runner.running, self.runner.threads
        self.finished, self.durations = self.runner.finished, self.runner.durations
        self.reporter = Reporter(api, session, outbox)
        self.reporting = Reporting(
            reporter=self.reporter,
            outbox=outbox,
            session=session,
            clock=clock,
            settings=settings,
            hooks=self.hooks,
            watchdog=self.watchdog,
            rng=rng,
            on_change=self._activity_changed,
            claim_will_carry=self._claim_will_carry,
        )
        # Prefetched jobs wait in `held` until a slot frees up, or go back to the queue.
        self.held = HeldJobs(
            api=api,
            session=session,
            runner=self.runner,
            clock=clock,
            hold_s=settings.prefetch_hold_ms / 1000.0,
            backoff=Backoff(settings.min_backoff_ms, settings.max_backoff_ms, rng),
            may_start=self._may_start,
        )
        self.runner.on_slot_free = self.held.feed
        self.claims = Claims(
            api=api,
            session=session,
            settings=settings,
            clock=clock,
            rng=rng,
            hooks=self.hooks,
            runner=self.runner,
            reporting=self.reporting,
            on_change=self._activity_changed,
            held=self.held,
            prefetch=PrefetchPolicy(
                settings.prefetch,
                self.held.hold_s,
                self.runner.recent,
                RoundTrip(),
                self.running.longest_s,
                self.running.turning,
                self.runner.starts,
            ),
        )
        self.wake = self.claims.wake
        # The runner's and the claims' verbs, under the names the bot and the tests use.
        self.start = self.runner.start
        self.cancel_all = self.runner.cancel_all
        self.wait_jobs = self.runner.wait_jobs
        self.abandon_jobs = self.runner.abandon_jobs
        self.claim = self.claims.claim
        self.claim_limit = self.claims.limit
        self.abort_claim = self.claims.abort
        self.claim_loop = self.claims.run

    def _may_start(self) -> bool:
        """Whether held jobs may start: work is allowed and not paused."""
        return self.hooks.may_claim() and not self.session.assignment.paused

    def cancel(self, job_id: str, reason: str = "cancelled", *, retryable: bool = False) -> bool:
        """Stop a running job (reported failed with `reason`), or forget a held one (an
        operator cancelled it: it is final already); False when it is not here."""
        return self.runner.cancel(job_id, reason, retryable=retryable) or self.held.drop(job_id)

    async def hold_loop(self, stop: asyncio.Event) -> None:
        """Give back the prefetched jobs not started within the hold time."""
        await self.held.run(stop)

    async def release_held(self, why: str) -> int:
        """Give back every prefetched job not started (a drain); how many."""
        return await self.held.release_all(why)

    def activity(self) -> BotState:
        if len(self.running):
            return BotState.PROCESS
        if self.reporting.busy:
            return BotState.REPORT
        if self.claims.call is not None:
            return BotState.CLAIM
        return BotState.IDLE

    def _activity_changed(self) -> None:
        # Told only when it differs: the bot's other conditions (circuit, quarantine,
        # backoff) tell the machine themselves, and this runs several times per job.
        activity = self.activity()
        if activity is not self._shown:
            self._shown = activity
            self.hooks.activity_changed(activity)

    def _claim_will_carry(self) -> bool:
        return self.claims.will_carry()

    def apply_assignment(self) -> None:
        """Follow `session.assignment` (already updated): resize, and look for work again."""
        self.slots.resize(self.session.assignment.max_concurrency)
        self.wake.set()

    async def progress_loop(self, stop: asyncio.Event) -> None:
        await progress_loop(
            stop,
            api=self.api,
            session=self.session,
            settings=self.settings,
            clock=self.clock,
            hooks=self.hooks,
            running=self.running,
        )

    async def log_loop(self, stop: asyncio.Event) -> None:
        await self.log_shipper.run(stop)

    async def tick(self) -> TickResult:
        """One turn of the pipeline to its end, by the steps its loops take: the outbox
        flushed, one claim for the free slots, its jobs run, their reports delivered."""
        accepted, finished = self.reporter.counts.accepted, self.finished.copy()
        if len(self.outbox):
            await self.reporting.flush_outbox()
        limit = self.claim_limit() if self.hooks.may_claim() else 0
        tasks = await self.claim(limit, 0, self.reporting.queue) if limit else []
        await asyncio.gather(*tasks)
        delivered = asyncio.Event()
        delivered.set()  # the report loop delivers what is pending, then returns
        await self.reporting.report_loop(delivered)
        ended = self.finished - finished
        return TickResult(
            claimed=len(tasks),
            succeeded=sum(n for (_, outcome), n in ended.items() if outcome == "succeeded"),
            failed=sum(n for (_, outcome), n in ended.items() if outcome == "failed"),
            delivered=self.reporter.counts.accepted - accepted,
            kept=len(self.outbox),
        )
