"""Finished jobs' reports, from the moment they exist until the coordinator has them.

`queue` takes a finished job's report; `report_loop` delivers what piled up in groups
(a batch call where the coordinator offers one), each under a deadline of the
watchdog; what could not be delivered goes to the outbox, which `outbox_loop` retries
with backoff (honouring `Retry-After`), or at once when told the coordinator is back.
While the circuit is open, reports go straight to the outbox without a try.

A report too large for the coordinator's request limit is replaced as it is queued
(`sizing`), so no report that can never fit waits anywhere.

A report the outbox cannot take is *unsaved*: it is logged as lost when the bot ends,
and the bot halts (`hooks.fatal`): going on would finish work whose results it could
not keep.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

from bot.agent.watchdog import Watchdog
from bot.errors import AuthError, CoordinatorError, OutboxError, OverloadedError
from bot.link.backoff import Backoff, RetryBudget
from bot.link.session import Session
from bot.reports import sizing
from bot.reports.delivery import MAX_BATCH, Delivery, Reporter, sort_results
from bot.reports.outbox import Outbox
from bot.settings import Settings
from bot.waiting import sleep_or
from bot.work.hooks import SchedulerHooks
from botfleet.clock import Clock
from botfleet.protocol import messages as m

log = logging.getLogger(__name__)

# The longest finished reports wait for the claim said to carry them (`report_on_claim`)
# before they go on their own; that claim normally leaves at the next turns of the loop.
RIDE_WAIT_S = 0.05


class Reporting:
    def __init__(
        self,
        *,
        reporter: Reporter,
        outbox: Outbox,
        session: Session,
        clock: Clock,
        settings: Settings,
        hooks: SchedulerHooks,
        watchdog: Watchdog,
        rng: random.Random,
        on_change: Callable[[], None],
        claim_will_carry: Callable[[], bool] = lambda: False,
    ) -> None:
        self.reporter = reporter
        self.outbox = outbox
        self.session = session
        self.clock = clock
        self.settings = settings
        self.hooks = hooks
        self.watchdog = watchdog
        self._on_change = on_change  # the pipeline's activity may have changed
        self._claim_will_carry = claim_will_carry  # a claim about to leave takes `pending`
        self.pending: list[m.ReportItem] = []  # finished, waiting for the report loop
        self.unsaved: list[m.ReportItem] = []  # neither delivered nor kept (outbox broken)
        self.ready = asyncio.Event()
        self.flush_now = asyncio.Event()  # the coordinator is reachable again
        self.claim_left = asyncio.Event()  # the claim loop moved: it took `pending`, or not
        self.delivering = False
        self._delivering: list[m.ReportItem] = []  # the group `report_loop` is delivering
        self._riding: list[m.ReportItem] = []  # reports on a claim on its way
        # A claim carrying reports was too large: the next group goes alone, where the
        # delivery splits it until each report fits or stands replaced.
        self._alone = False
        self._outbox_backoff = Backoff(settings.min_backoff_ms, settings.max_backoff_ms, rng)
        self._retry_budget = RetryBudget(settings.retry_budget_ratio)
        self._failed_delivery: CoordinatorError | None = None  # for the outbox loop to retry

    @property
    def busy(self) -> bool:
        """Reports wait or are on their way, alone or on a claim (the REPORT activity)."""
        return self.delivering or bool(self.pending) or bool(self._riding)

    def unreported(self) -> list[str]:
        """Jobs whose reports the coordinator has not confirmed: queued, on their way
        (riding on a claim or in a delivery), or kept in the outbox."""
        waiting = [*self.pending, *self._riding, *self._delivering, *self.outbox.pending()]
        return list(dict.fromkeys(item.job_id for item in waiting))

    def queue(self, report: m.ReportItem) -> None:
        limit = self.session.max_body_bytes
        if limit is not None:
            fitting = sizing.fit(report, limit)
            if fitting is not report:
                self.reporter.counts.replaced += 1
            report = fitting
        self.pending.append(report)
        self.ready.set()

    # ------------------------------------------------------------ riding on claims

    def take_riders(self, budget_bytes: int | None = None) -> list[m.ReportItem]:
        """The pending reports that fit in `budget_bytes`, for a claim to carry
        (`report_on_claim`); none after a claim carrying reports was too large."""
        if self._alone:
            return []
        count = MAX_BATCH
        if budget_bytes is not None:
            count = sizing.fitting(self.pending[:MAX_BATCH], budget_bytes)
        riders, self.pending = self.pending[:count], self.pending[count:]
        self._riding = riders
        return riders

    def rode(self, riders: list[m.ReportItem], results: list[m.ReportResult]) -> None:
        """The claim that carried `riders` was answered: like a batch report's answer."""
        self._riding = []
        delivery = sort_results(riders, results)
        self.reporter.counts.accepted += len(delivery.accepted)
        self.reporter.counts.rode += len(delivery.accepted)
        self.reporter.counts.dropped += len(delivery.dropped)
        if delivery.undelivered:
            self.ride_back(delivery.undelivered)

    def ride_back(self, riders: list[m.ReportItem], *, alone: bool = False) -> None:
        """The claim carrying `riders` failed or was given up: deliver them the usual way
        (the coordinator may have applied them; sending them again is harmless). `alone`:
        the claim was too large; they go on their own, not on the next claim."""
        self._riding = []
        self._alone = self._alone or alone
        if riders:
            self.pending[:0] = riders
            self.ready.set()

    async def flush_outbox(self) -> Delivery:
        delivery = await self.reporter.flush_outbox()
        await self.after_delivery(delivery)
        return delivery

    async def after_delivery(self, delivery: Delivery) -> None:
        if isinstance(delivery.error, AuthError):
            await self.hooks.renew(self.session.generation)

    # ------------------------------------------------------------ the loops

    async def report_loop(self, stop: asyncio.Event) -> None:
        """Deliver finished jobs' reports; whatever piled up meanwhile goes in one group.
        Once `stop` is set, it delivers what is pending and returns."""
        while True:
            if not self.pending:
                if stop.is_set():
                    return
                self.ready.clear()
                await sleep_or(self.clock, None, self.ready, stop)
                continue
            if not stop.is_set() and not self._alone and self._claim_will_carry():
                self.claim_left.clear()
                if await sleep_or(self.clock, RIDE_WAIT_S, self.claim_left, stop):
                    continue  # the claim took them, or it did not leave after all: look again
            group, self.pending = self.pending[:MAX_BATCH], self.pending[MAX_BATCH:]
            self._alone = False
            if not self.hooks.reachable():
                self._keep_or_fatal(group)  # the circuit is open: no try, straight to the outbox
                self._on_change()
                continue
            self.delivering, self._delivering = True, group
            self._on_change()
            try:
                delivery = await self._deliver_guarded(group)
            except OutboxError as exc:
                self.unsaved += group
                self.hooks.fatal(exc)
                continue
            finally:
                self.delivering, self._delivering = False, []
                self._on_change()
            if delivery is None:
                continue
            await self.after_delivery(delivery)
            if delivery.undelivered:
                # Their answer may have been lost after the coordinator took them; until it
                # hears again it counts those jobs against max_concurrency. So the outbox
                # loop retries at once (budget permitting) or after its backoff, not a
                # heartbeat interval later.
                self.retry_soon(delivery.error)
            else:
                self._retry_budget.earn()

    async def _deliver_guarded(self, group: list[m.ReportItem]) -> Delivery | None:
        """Deliver `group` under a deadline; None when the watchdog gave up on it (the group
        is then in the outbox). Stopped hard meanwhile, it keeps the group and re-raises."""
        delivery = asyncio.create_task(self.reporter.deliver(group), name="delivery")
        name = f"delivery of {len(group)} report(s)"
        try:
            with self.watchdog.guard(name, self.settings.report_limit_s, delivery.cancel):
                return await delivery
        except asyncio.CancelledError:
            current = asyncio.current_task()
            stopping = current is not None and current.cancelling() > 0
            self._keep_or_fatal(group)  # resending what may have arrived is harmless
            if stopping:
                raise
            return None

    def _keep_or_fatal(self, items: list[m.ReportItem]) -> None:
        try:
            self.outbox.append(items)
        except OutboxError as exc:
            self.unsaved += items
            self.hooks.fatal(exc)
            return
        self.reporter.counts.kept += len(items)

    def retry_soon(self, error: CoordinatorError | None) -> None:
        """A delivery failed and its reports are in the outbox: the outbox loop retries them
        at once (budget permitting) or after its backoff, not a heartbeat interval later."""
        self._failed_delivery = error
        self.flush_now.set()

    async def outbox_loop(self, stop: asyncio.Event) -> None:
        """Retry what the outbox holds: when told the coordinator is back, else with backoff."""
        while not stop.is_set():
            # Cleared before this turn looks, not after: a failure or a wake that comes
            # while this turn flushes is for the next turn, which then begins at once.
            self.flush_now.clear()
            delay = self.session.heartbeat_interval_s
            failed, self._failed_delivery = self._failed_delivery, None
            if failed is not None:  # a delivery just failed
                delay = 0.0 if self._retry_at_once(failed) else self._outbox_backoff.after(failed)
            elif len(self.outbox) and self.hooks.reachable():
                try:
                    delivery = await self.flush_outbox()
                except OutboxError as exc:
                    self.hooks.fatal(exc)
                    return
                if delivery.error is not None:
                    delay = self._outbox_backoff.after(delivery.error)
                    log.info("outbox: %d waiting (%s)", len(self.outbox), delivery.error)
                else:
                    self._outbox_backoff.reset()
            await sleep_or(self.clock, delay, stop, self.flush_now)

    def _retry_at_once(self, error: CoordinatorError | None) -> bool:
        """Whether a failed delivery's reports are sent again from the outbox at once: a
        failure that may be a lost answer or a passing refusal (no answer, a 5xx, a 429/503
        naming no time), while the retry budget lasts; else the outbox backs off."""
        if error is None or not error.transient:
            return False
        if isinstance(error, OverloadedError) and error.retry_after_s is not None:
            return False
        return self._retry_budget.spend()

    # ------------------------------------------------------------ stopping

    def keep(self, items: list[m.ReportItem]) -> None:
        """Put reports in the outbox without trying to send them (stopping)."""
        if not items:
            return
        try:
            self.outbox.append(items)
        except OutboxError as exc:
            self.unsaved += items
            log.error("%d report(s) could not be kept: %s", len(items), exc)

    def keep_pending(self) -> None:
        """Everything finished but not delivered goes to the outbox (the end of a stop)."""
        pending, self.pending = self.pending, []
        self.keep(pending)
