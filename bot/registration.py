"""Staying registered: the first registration, SYNC after every one, and renewals.

REGISTER (the `Registrar` retries with backoff) -> SYNC (the assignment applied, the
outbox delivered before any new claim) -> the online state the bot is in now. The bot
registers again after a 404 (the coordinator forgot it: its lease ran out) or a 401
(its token expired), and before its token expires (the `token` task); once, however
many loops ask at the same time. The same instance id gets the same bot back.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from bot import hints
from bot.errors import CoordinatorError, OutboxError
from bot.lifecycle import ONLINE_STATES
from bot.session import Registrar
from bot.state import BotState
from bot.waiting import sleep_or

if TYPE_CHECKING:
    from bot.machine import Bot

log = logging.getLogger(__name__)

S = BotState


class Registration:
    def __init__(self, bot: Bot) -> None:
        self._bot = bot
        self._registrar: Registrar | None = None  # given at the first registration
        self._lock = asyncio.Lock()
        self._registered = asyncio.Event()  # set at every registration (the token timer)
        # The bot's online state is not derived meanwhile (see `Bot.online_state`).
        self.registering = True  # until the first SYNC, and during announced renewals

    async def first(self, registrar: Registrar) -> bool:
        """Register (retrying) and sync; False when a stop came first. Raises
        `CoordinatorError` when registration is refused for good."""
        self._registrar = registrar
        answer = await registrar.register(self._bot.stopping.stop)
        if answer is None:
            return False
        self._registered.set()
        await self.sync("registered")
        return True

    async def renew(self, generation: int) -> bool:
        """Register again (after a 404 or 401, or before the token expires); once, however
        many loops ask at the same time. The same instance id gets the same bot back."""
        bot = self._bot
        assert bot.session is not None and self._registrar is not None
        async with self._lock:
            if bot.session.generation != generation:
                return True
            # Online, the lifecycle shows it; while syncing or draining, it stays quiet.
            announce = bot.lifecycle.state in ONLINE_STATES
            if announce:
                self.registering = True
            try:
                answer = await self._registrar.register(
                    bot.stopping.stop if announce else bot.stopping.hard, announce=announce
                )
            except CoordinatorError as exc:
                bot.halt(hints.refused(bot.settings, exc))
                return False
            if answer is None:
                return False
            self._registered.set()
            # A drain may have begun while the answer was on its way: then sync quietly.
            await self.sync(
                "registered again", announce=announce and bot.lifecycle.state is S.REGISTER
            )
            return True

    async def sync(self, reason: str, announce: bool = True) -> None:
        """Apply what registration brought and deliver what the outbox kept, then go on."""
        bot = self._bot
        assert bot.scheduler is not None and bot.session is not None
        if announce:
            bot.lifecycle.move(S.SYNC)
        bot.log_context.bot_id = bot.session.bot_id
        bot.scheduler.apply_assignment()
        cut: CoordinatorError | None = None
        if len(bot.outbox):
            opened = bot.circuit.opened
            try:
                # Not reporting.flush_outbox(): a 401 here must not re-enter renew().
                delivery = await bot.scheduler.reporter.flush_outbox()
            except OutboxError as exc:
                bot.fatal(exc)
            else:
                if delivery.error is not None and bot.circuit.opened > opened:
                    cut = delivery.error  # the flush's failure opened the circuit
        if announce:
            self.registering = False
            self._resume(reason, cut)

    def _resume(self, reason: str, cut: CoordinatorError | None = None) -> None:
        """From SYNC on to the online state the bot is in now; DEGRADED_NET when the outbox
        flush at SYNC failed on the network, even if another call got through since (a
        heartbeat then leads the way back through SYNC, at once)."""
        bot = self._bot
        assert bot.scheduler is not None
        if bot.lifecycle.state is not S.SYNC or bot.stopping.unsafe is not None:
            return  # a drain or a halt began meanwhile: it owns the lifecycle now
        if cut is not None:
            bot.lifecycle.move(S.DEGRADED_NET, f"the outbox could not be delivered: {cut}")
            if bot.heartbeat is not None:
                bot.heartbeat.beat_now.set()
            return
        bot.lifecycle.move(bot.online_state(), reason)
        bot.scheduler.wake.set()
        bot.scheduler.reporting.flush_now.set()

    async def token_timer(self, stop: asyncio.Event) -> None:
        """Register again (a new token, same bot) before the token's lifetime runs out."""
        bot = self._bot
        assert bot.session is not None
        while not stop.is_set():
            self._registered.clear()
            lifetime, generation = bot.session.token_lifetime_s, bot.session.generation
            wait = None if lifetime is None else max(1.0, lifetime * bot.settings.token_renew_at)
            if await sleep_or(bot.clock, wait, stop, self._registered):
                continue  # registered meanwhile (a new token), or stopping
            log.info("the bot token expires in %.0f s: renewing it", (lifetime or 0) - (wait or 0))
            await self.renew(generation)
