"""Staying registered: registering (with retries), SYNC after every registration, renewals.

REGISTER (the `Registrar` retries transient failures with backoff) -> SYNC (the
assignment applied, the outbox delivered before any new claim) -> the online state
the bot is in now. The bot registers again after a 404 (the coordinator forgot it: its
lease ran out) or a 401 (its token expired), and before its token expires (the `token`
task); once, however many loops ask at the same time. The same instance id gets the
same bot back.
"""

from __future__ import annotations

import asyncio
import logging
import random

from bot.agent import hints
from bot.agent.lifecycle import ONLINE_STATES, Lifecycle
from bot.agent.parts import OnlineParts
from bot.agent.stops import StopRequests
from bot.errors import CoordinatorError, NotFoundError, OutboxError
from bot.link.backoff import Backoff
from bot.link.http import Api
from bot.link.session import Session
from bot.settings import Settings
from bot.state import BotState
from bot.system.host import HostFacts
from bot.waiting import sleep_or
from botfleet.clock import Clock
from botfleet.protocol import messages as m

log = logging.getLogger(__name__)

S = BotState


class Registrar:
    """Registers the bot, retrying until it works, the bot stops, or retrying cannot help."""

    def __init__(
        self,
        api: Api,
        session: Session,
        settings: Settings,
        host: HostFacts,
        lifecycle: Lifecycle,
        clock: Clock,
        rng: random.Random,
    ) -> None:
        self._api = api
        self._session = session
        self._settings = settings
        self._host = host
        self._lifecycle = lifecycle
        self._clock = clock
        self._rng = rng

    def request(self) -> m.RegisterRequest:
        session, host = self._session, self._host
        return m.RegisterRequest(
            bot_key=session.identity.bot_key,
            instance_id=session.instance_id,
            version=self._settings.bot_version,
            capabilities=list(session.capabilities),
            resources=m.Resources(cpu_cores=host.cpu_cores, mem_mb=host.mem_mb),
            constraints={"max_concurrency": self._settings.max_concurrency},
            meta={
                "hostname": host.hostname,
                "os": host.os,
                "platform": host.platform,
                "python": host.python,
                "name": session.identity.name,
            },
            labels=dict(self._settings.labels),
        )

    async def register(
        self, stop: asyncio.Event, *, announce: bool = True
    ) -> m.RegisterResponse | None:
        """The coordinator's answer, or None when `stop` was set while waiting to retry.

        Transient failures are retried with backoff; a refused enrollment (401/403),
        a rejected request (4xx) or a wrong address (404) raise: retrying cannot help.
        `announce=False` leaves the lifecycle alone (re-registering while draining).
        """
        backoff = Backoff(self._settings.min_backoff_ms, self._settings.max_backoff_ms, self._rng)
        while True:
            if stop.is_set():
                return None
            if announce:
                self._lifecycle.move(BotState.REGISTER)
            try:
                answer = await self._api.register(self.request())
            except NotFoundError as exc:
                raise NotFoundError(
                    404, f"{exc} - is SERVER_BASE right (it ends in /v1)?", code=exc.code
                ) from exc
            except CoordinatorError as exc:
                if not exc.transient:
                    raise
                delay = backoff.after(exc)
                log.warning("registration failed (%s); next try in %.1f s", exc, delay)
                # Not when a drain began meanwhile: the drain owns the lifecycle then.
                if announce and self._lifecycle.state is BotState.REGISTER:
                    self._lifecycle.move(BotState.BACKOFF, "registration failed")
                if await sleep_or(self._clock, delay, stop):
                    return None
                continue
            self._api.authenticate(answer.auth.access_token if answer.auth else None)
            self._session.registered(answer)
            log.info(
                "registered as %s (features: %s)",
                answer.bot_id,
                ",".join(sorted(self._session.features)) or "none",
            )
            return answer


class Registration:
    """The first registration and every one after it, with the SYNC that follows each."""

    def __init__(self, parts: OnlineParts, stops: StopRequests, registrar: Registrar) -> None:
        self._parts = parts
        self._stops = stops
        self._registrar = registrar
        self._lock = asyncio.Lock()
        self._registered = asyncio.Event()  # set at every registration (the token timer)
        # The bot's online state is not derived meanwhile (see `Online.online_state`).
        self.registering = True  # until the first SYNC, and during announced renewals

    async def first(self) -> bool:
        """Register (retrying) and sync; False when a stop came first. Raises
        `CoordinatorError` when registration is refused for good."""
        answer = await self._registrar.register(self._stops.stop)
        if answer is None:
            return False
        self._registered.set()
        await self.sync("registered")
        return True

    async def renew(self, generation: int) -> bool:
        """Register again (after a 404 or 401, or before the token expires); once, however
        many loops ask at the same time. The same instance id gets the same bot back."""
        parts, stops = self._parts, self._stops
        async with self._lock:
            if parts.session.generation != generation:
                return True
            # Online, the lifecycle shows it; while syncing or draining, it stays quiet.
            announce = parts.lifecycle.state in ONLINE_STATES
            if announce:
                self.registering = True
            try:
                answer = await self._registrar.register(
                    stops.stop if announce else stops.hard, announce=announce
                )
            except CoordinatorError as exc:
                stops.halt(hints.cannot_go_on(parts.settings, exc))
                return False
            if answer is None:
                return False
            self._registered.set()
            # A drain may have begun while the answer was on its way: then sync quietly.
            await self.sync(
                "registered again", announce=announce and parts.lifecycle.state is S.REGISTER
            )
            return True

    async def sync(self, reason: str, announce: bool = True) -> None:
        """Apply what registration brought and deliver what the outbox kept, then go on."""
        parts = self._parts
        if announce:
            parts.lifecycle.move(S.SYNC)
        parts.log_context.bot_id = parts.session.bot_id
        parts.scheduler.apply_assignment()
        cut: CoordinatorError | None = None
        if len(parts.outbox):
            opened = parts.circuit.opened
            try:
                # Not reporting.flush_outbox(): a 401 here must not re-enter renew().
                delivery = await parts.scheduler.reporter.flush_outbox()
            except OutboxError as exc:
                self._stops.halt(hints.outbox(parts.settings, exc))
            else:
                if delivery.error is not None and parts.circuit.opened > opened:
                    cut = delivery.error  # the flush's failure opened the circuit
        if announce:
            self.registering = False
            self._resume(reason, cut)

    def _resume(self, reason: str, cut: CoordinatorError | None = None) -> None:
        """From SYNC on to the online state the bot is in now; DEGRADED_NET when the outbox
        flush at SYNC failed on the network, even if another call got through since (a
        heartbeat then leads the way back through SYNC, at once)."""
        parts = self._parts
        if parts.lifecycle.state is not S.SYNC or self._stops.unsafe is not None:
            return  # a drain or a halt began meanwhile: it owns the lifecycle now
        if cut is not None:
            parts.lifecycle.move(S.DEGRADED_NET, f"the outbox could not be delivered: {cut}")
            parts.heartbeat.beat_now.set()
            return
        parts.lifecycle.move(parts.online_state(), reason)
        parts.scheduler.wake.set()
        parts.scheduler.reporting.flush_now.set()

    async def token_timer(self, stop: asyncio.Event) -> None:
        """Register again (a new token, same bot) before the token's lifetime runs out."""
        parts = self._parts
        while not stop.is_set():
            self._registered.clear()
            lifetime, generation = parts.session.token_lifetime_s, parts.session.generation
            wait = None if lifetime is None else max(1.0, lifetime * parts.settings.token_renew_at)
            if await sleep_or(parts.clock, wait, stop, self._registered):
                continue  # registered meanwhile (a new token), or stopping
            log.info("the bot token expires in %.0f s: renewing it", (lifetime or 0) - (wait or 0))
            await self.renew(generation)
