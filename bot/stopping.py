"""How a bot ends: drained (SHUTDOWN, exit 0), stopped hard (exit 1), or halted (SAFE_HALT).

- **Drain** (first SIGTERM/SIGINT, or the coordinator's `drain`): no more claims;
  running jobs get `drain_grace_s` to finish, then are cancelled and reported failed
  (retryable, so the coordinator hands them out again); reports are delivered or
  kept in the outbox; the bot says goodbye (a last heartbeat, then `deregister`,
  which releases whatever it still holds) and exits 0.
- **Hard stop** (a second signal): running jobs are abandoned (their leases run
  out, or the next start with a new instance id releases them), finished reports
  go to the outbox, exit 1. No acknowledged report is lost.
- **Halt** (`UnsafeError`: the outbox cannot keep reports, the identity was taken,
  registration refused, a task crashed): at once SAFE_HALT, no more claims, running
  jobs abandoned, finished reports delivered if possible, the outbox left as it is,
  one line saying why and what to do, exit 3. A halt during a drain ends the drain
  in SAFE_HALT instead of SHUTDOWN.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from bot.errors import CoordinatorError, OutboxError, UnsafeError
from bot.state import BotState
from botfleet.protocol import messages as m

if TYPE_CHECKING:
    from bot.machine import Bot

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_STOPPED_HARD = 1
EXIT_BAD_SETTINGS = 2
EXIT_SAFE_HALT = 3

S = BotState


class Stopping:
    def __init__(self, bot: Bot) -> None:
        self._bot = bot
        self.stop = asyncio.Event()  # drain: no more claims, finish, leave
        self.hard = asyncio.Event()  # stop now
        self.halting = asyncio.Event()  # `unsafe` is set
        self.claims_end = asyncio.Event()
        self.reports_end = asyncio.Event()
        self.end = asyncio.Event()  # the side tasks end
        self.reason = ""
        self.unsafe: UnsafeError | None = None

    def may_work(self) -> bool:
        return not self.stop.is_set() and self.unsafe is None

    # ------------------------------------------------------------ requests

    def request_stop(self, reason: str) -> None:
        if self.stop.is_set():
            if not self.hard.is_set():
                log.warning("second stop request (%s): stopping hard", reason)
                self.hard.set()
            return
        self.request_drain(reason)

    def request_drain(self, reason: str) -> None:
        if not self.stop.is_set():
            log.info("stopping: %s", reason)
            self.reason = reason
            self.stop.set()

    def halt(self, error: UnsafeError) -> None:
        if self.unsafe is None:
            log.error("cannot go on safely: %s", error.why)
            self.unsafe = error
        self.halting.set()

    # ------------------------------------------------------------ before the bot is online

    def halt_now(self, code: int, error: UnsafeError) -> int:
        self.unsafe = self.unsafe or error
        self._bot.lifecycle.move(S.SAFE_HALT, error.why)
        log.critical("SAFE_HALT: %s", error)
        return code

    def stopped_before_registering(self) -> int:
        self._bot.lifecycle.move(S.SHUTDOWN, f"{self.reason} before registering")
        return EXIT_OK

    # ------------------------------------------------------------ online

    async def finish(self) -> int:
        """End a bot that got online: halt if unsafe (unless already draining), else drain."""
        if self.unsafe is not None and not self.stop.is_set():
            return await self._halt()
        return await self._drain()

    async def _drain(self) -> int:
        bot = self._bot
        scheduler, session, supervisor = bot.scheduler, bot.session, bot.supervisor
        assert scheduler is not None and session is not None
        bot.lifecycle.move(S.DRAINING, self.reason)
        self.claims_end.set()
        if session.has(m.FEATURE_DEREGISTER):
            # A claim held open by long-poll ends now: deregistering requeues what it got.
            await supervisor.cancel("claim")
        elif not await supervisor.join("claim", self.hard):
            return await self._stop_hard()
        if not await scheduler.wait_jobs(self.hard, bot.settings.drain_grace_s):
            if not self.hard.is_set():
                await self._grace_over()
            if self.hard.is_set():
                return await self._stop_hard()
        self.reports_end.set()
        if not await supervisor.join("report", self.hard):
            return await self._stop_hard()
        scheduler.reporting.keep_pending()
        if bot.reachable() and len(bot.outbox):
            try:
                await scheduler.reporter.flush_outbox()
            except OutboxError as exc:
                log.error("outbox: %s", exc)
        self.end.set()
        await supervisor.cancel_all()
        return await self._leave(EXIT_OK, "drained")

    async def _grace_over(self) -> None:
        """The grace period ran out: cancel what runs (reported failed, retryable)."""
        bot = self._bot
        assert bot.scheduler is not None
        grace = bot.settings.drain_grace_s
        cancelled = bot.scheduler.cancel_all(
            f"the bot shut down before the job ended (drain grace of {grace:g} s)", retryable=True
        )
        log.warning(
            "drain grace of %g s ran out: %d job(s) cancelled, reported failed (retryable)",
            grace,
            cancelled,
        )
        if await bot.scheduler.wait_jobs(self.hard, bot.settings.cancel_wait_s):
            return
        if not self.hard.is_set():
            # A handler that ignores its cancellation: leave it to its lease (or deregister).
            left = await bot.scheduler.abandon_jobs(wait_s=bot.settings.cancel_wait_s)
            log.warning("watchdog: %d job(s) ignored their cancellation; abandoned", left)

    async def _stop_hard(self) -> int:
        bot = self._bot
        assert bot.scheduler is not None
        await bot.supervisor.cancel("claim")
        await bot.scheduler.abandon_jobs()
        await bot.supervisor.cancel_all()
        bot.scheduler.reporting.keep_pending()
        return await self._leave(EXIT_STOPPED_HARD, "stopped hard", farewell=False)

    async def _halt(self) -> int:
        bot = self._bot
        scheduler, supervisor, unsafe = bot.scheduler, bot.supervisor, self.unsafe
        assert scheduler is not None and unsafe is not None
        bot.lifecycle.move(S.SAFE_HALT, unsafe.why)
        self.claims_end.set()
        await supervisor.cancel("claim")
        await scheduler.abandon_jobs(wait_s=bot.settings.cancel_wait_s)
        self.reports_end.set()  # what finished is still delivered, if the coordinator answers
        if not await supervisor.join("report", self.hard):
            await supervisor.cancel("report")
        self.end.set()
        await supervisor.cancel_all()
        scheduler.reporting.keep_pending()
        return await self._leave(EXIT_SAFE_HALT, unsafe.why)

    async def _leave(self, code: int, reason: str, *, farewell: bool = True) -> int:
        bot = self._bot
        assert bot.scheduler is not None
        if len(bot.outbox):
            log.warning("outbox: %d report(s) kept for the next start", len(bot.outbox))
        for item in bot.scheduler.reporting.unsaved:
            log.error("report lost (not delivered, not kept): %s", item)
        final, code = (S.SAFE_HALT, EXIT_SAFE_HALT) if self.unsafe else (S.SHUTDOWN, code)
        bot.lifecycle.move(final, self.unsafe.why if self.unsafe else reason)
        if farewell:
            await self._farewell()
        if self.unsafe is not None:
            log.critical("SAFE_HALT: %s", self.unsafe)
        return code

    async def _farewell(self) -> None:
        """A last heartbeat (the coordinator shows the final state), then `deregister`."""
        bot = self._bot
        session, heartbeat, api = bot.session, bot.heartbeat, bot.api
        assert session is not None and heartbeat is not None and api is not None
        if session.bot_id is None or not bot.reachable():
            return
        try:
            await heartbeat.beat()
        except CoordinatorError as exc:
            log.debug("last heartbeat failed: %s", exc)
        if not session.has(m.FEATURE_DEREGISTER):
            return
        try:
            request = m.DeregisterRequest(instance_id=session.instance_id)
            await api.deregister(session.bot_id, request)
        except CoordinatorError as exc:
            log.warning("deregister failed (%s); the bot lease will run out", exc)
        else:
            log.info("deregistered")
