"""The heartbeat loop: keeps the bot's lease, lists running jobs, brings the coordinator's word.

One heartbeat at a time: a slow coordinator delays the next one instead of
queueing them up. Before each one the bot checks itself (`healthy`: can the
outbox still keep reports, is the identity still its own). A failed heartbeat is
retried sooner than the interval (with backoff) and never stops the loop; 404
(the coordinator forgot the bot) and 401 (the token expired) lead to registering
again; 409 `instance_replaced` means another process took this bot's identity.
While the circuit is open, and until a heartbeat gets through after it (a 503 closes
the circuit but brings no heartbeat answer), the heartbeat is the probe that finds the
coordinator again: it retries on a short leash (jittered, from MIN_BACKOFF_MS up to
`probe_max_backoff_ms`), so the bot is back within a couple of seconds of the
coordinator, whatever the heartbeat interval.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Protocol

from bot.agent.lifecycle import Lifecycle
from bot.errors import AuthError, ConflictError, CoordinatorError, NotFoundError
from bot.link.backoff import Backoff
from bot.link.circuit import CircuitBreaker
from bot.link.http import Api
from bot.link.session import Session
from bot.settings import Settings
from bot.state import BotState
from bot.system.host import ProcessLoad
from bot.waiting import sleep_or
from bot.work.running_jobs import RunningJobs
from botfleet.clock import Clock
from botfleet.protocol import messages as m

log = logging.getLogger(__name__)

MAX_UNREPORTED = 10_000  # the protocol's bound on a heartbeat's `unreported`

INSTANCE_REPLACED = "instance_replaced"


class HeartbeatHandler(Protocol):
    async def on_heartbeat(self, answer: m.HeartbeatResponse) -> None: ...

    async def renew(self, generation: int) -> bool: ...

    def check_health(self) -> None:
        """Check the bot's own state before a heartbeat (the bot halts if it must; a halt
        during a drain lets the drain, and its heartbeats, go on)."""
        ...

    def replaced(self, error: ConflictError) -> None:
        """Another process registered as this bot."""
        ...


class Heartbeat:
    def __init__(
        self,
        *,
        api: Api,
        session: Session,
        running: RunningJobs,
        lifecycle: Lifecycle,
        load: ProcessLoad,
        handler: HeartbeatHandler,
        clock: Clock,
        settings: Settings,
        rng: random.Random,
        breaker: CircuitBreaker | None = None,
        unreported: Callable[[], list[str]] = list,
        held: Callable[[], list[str]] = list,
    ) -> None:
        self._api = api
        self._session = session
        self._running = running
        self._lifecycle = lifecycle
        self._load = load
        self._handler = handler
        self._clock = clock
        self._breaker = breaker
        self._unreported = unreported  # finished jobs whose reports wait (their leases stay)
        self._held = held  # prefetched jobs not started yet (their leases stay)
        self._backoff = Backoff(settings.min_backoff_ms, settings.max_backoff_ms, rng)
        probe_max_ms = max(settings.min_backoff_ms, settings.probe_max_backoff_ms)
        self._probe_backoff = Backoff(settings.min_backoff_ms, probe_max_ms, rng)
        self.beat_now = asyncio.Event()  # send the next heartbeat without waiting

    def request(self) -> m.HeartbeatRequest:
        request = m.HeartbeatRequest(
            instance_id=self._session.instance_id,
            running=self._running.wire(),
            metrics=self._load.sample(),
            state=self._lifecycle.state.value,
        )
        unreported = self._unreported()
        if unreported:
            request.unreported = unreported[:MAX_UNREPORTED]
        held = self._held()
        if held:
            request.held = held[:MAX_UNREPORTED]
        return request

    async def beat(self) -> m.HeartbeatResponse:
        bot_id = self._session.bot_id
        if bot_id is None:
            raise RuntimeError("heartbeat before registration")
        if self._breaker is not None:
            self._breaker.probe()
        return await self._api.heartbeat(bot_id, self.request())

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await sleep_or(self._clock, self._session.heartbeat_interval_s, stop, self.beat_now)
            # A request for a heartbeat made while this one is on its way brings one more.
            self.beat_now.clear()
            while not stop.is_set():
                self._handler.check_health()
                if await self._beat_once(stop):
                    break

    async def _beat_once(self, stop: asyncio.Event) -> bool:
        """One heartbeat; False when it failed and should be retried (after a wait)."""
        try:
            answer = await self.beat()
        except (NotFoundError, AuthError) as exc:
            log.warning("heartbeat refused (%s): registering again", exc)
            if await self._handler.renew(self._session.generation):
                return False  # registered again: send a heartbeat right away
            return await self._wait_retry(stop, exc)
        except ConflictError as exc:
            if exc.code == INSTANCE_REPLACED:
                self._handler.replaced(exc)
            return await self._wait_retry(stop, exc)
        except CoordinatorError as exc:
            return await self._wait_retry(stop, exc)
        self._backoff.reset()
        self._probe_backoff.reset()
        await self._handler.on_heartbeat(answer)
        return True

    def _probing(self) -> bool:
        """The heartbeat is the probe: the circuit is open, or it closed on an answer that
        was no heartbeat (a 503) and the bot still waits for one to come back (SYNC)."""
        circuit_open = self._breaker is not None and self._breaker.is_open
        return circuit_open or self._lifecycle.state is BotState.DEGRADED_NET

    async def _wait_retry(self, stop: asyncio.Event, exc: CoordinatorError) -> bool:
        if self._probing():
            # The probe: the bot does no work until it gets through, so it looks often
            # (the jitter keeps a fleet cut off together from coming back in step).
            delay = self._probe_backoff.after(exc, cap_s=self._probe_backoff.max_ms / 1000.0)
        else:
            # Sooner than the interval: the lease runs out after a few missed heartbeats.
            delay = self._backoff.after(exc, cap_s=self._session.heartbeat_interval_s)
        log.warning("heartbeat failed (%s); next try in %.1f s", exc, delay)
        # A heartbeat asked for meanwhile (the circuit just opened: probe now) cuts it short.
        if await sleep_or(self._clock, delay, stop, self.beat_now):
            self.beat_now.clear()
        return False
