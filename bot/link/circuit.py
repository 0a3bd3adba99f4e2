"""The circuit breaker: repeated failures to reach the coordinator open it (DEGRADED_NET).

CLOSED: calls go out; `threshold` failures in a row (no answer, or a 5xx that is not
load shedding) open it, once the first of them is at least `window_s` old or the
streak has reached `QUICK_OPEN_FACTOR` times the threshold: on a lossy network that
still works, a few lost calls in a row among hundreds a second are not an outage,
while an outage makes every call fail for as long as it lasts (a busy bot's retries
reach the longer streak at once, an idle bot's calls the window). OPEN: the bot
stops calling the coordinator - no claims, reports go straight to the outbox, no
progress - except for its probe, the heartbeat, retried with a short backoff.
HALF_OPEN: a probe is on its way; any answer closes the circuit, a failure opens it
again. An answer with an error status still shows the coordinator is
reachable: 429/503 are load shedding (the bot backs off), other 4xx are answers.

`BreakerApi` wraps an `Api` so that every call, whichever loop makes it, counts.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bot.errors import CoordinatorError, NetworkError, ServerError, TlsError
from bot.link.http import Api
from botfleet.protocol import messages as m
from botfleet.protocol.joblogs import BulkLogRequest, BulkLogResponse, LogBatch
from botfleet.protocol.prefetch import ReleaseRequest, ReleaseResponse

log = logging.getLogger(__name__)

T = TypeVar("T")

# A streak this many times the threshold opens the circuit however short: at 10 % loss,
# nine losses in a row come about once in a billion calls.
QUICK_OPEN_FACTOR = 3


class Circuit(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


Listener = Callable[[Circuit, Circuit, str], None]


def unreachable(error: BaseException) -> bool:
    """Whether `error` means the coordinator could not be reached (as opposed to an answer)."""
    return isinstance(error, NetworkError | ServerError)


class CircuitBreaker:
    def __init__(
        self,
        threshold: int,
        on_change: Listener | None = None,
        *,
        window_s: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1:
            raise ValueError(f"threshold must be at least 1, got {threshold}")
        if window_s < 0:
            raise ValueError(f"window_s must not be negative, got {window_s}")
        self.threshold = threshold
        self.window_s = window_s
        self._monotonic = monotonic
        self.state = Circuit.CLOSED
        self.failures = 0  # in a row
        self._streak_began = 0.0  # when the first failure of the streak came
        self.opened = 0  # how many times it opened (metrics, tests)
        self._listeners: list[Listener] = [] if on_change is None else [on_change]

    def subscribe(self, listener: Listener) -> None:
        """Call `listener(previous, state, reason)` on every change."""
        self._listeners.append(listener)

    @property
    def is_open(self) -> bool:
        """True while calls other than probes should not go out."""
        return self.state is not Circuit.CLOSED

    def probe(self) -> None:
        """A probe goes out (the heartbeat while the circuit is open)."""
        if self.state is Circuit.OPEN:
            self._set(Circuit.HALF_OPEN, "probing the coordinator")

    def success(self) -> None:
        self.failures = 0
        if self.state is not Circuit.CLOSED:
            self._set(Circuit.CLOSED, "the coordinator answered")

    def failure(self, error: BaseException) -> None:
        now = self._monotonic()
        if self.failures == 0:
            self._streak_began = now
        self.failures += 1
        if self.state is Circuit.HALF_OPEN:
            self._set(Circuit.OPEN, f"probe failed: {error}")
        elif (
            self.state is Circuit.CLOSED
            and self.failures >= self.threshold
            and (
                now - self._streak_began >= self.window_s
                or self.failures >= QUICK_OPEN_FACTOR * self.threshold
            )
        ):
            self.opened += 1
            lasted = now - self._streak_began
            self._set(
                Circuit.OPEN,
                f"{self.failures} failures in a row over {lasted:.1f} s, the last: {error}",
            )

    def record(self, error: BaseException | None) -> None:
        """Count the outcome of one call: None (an answer) or the error it raised."""
        if error is not None and unreachable(error):
            self.failure(error)
        else:
            self.success()

    def _set(self, state: Circuit, reason: str) -> None:
        previous, self.state = self.state, state
        log.log(
            logging.DEBUG if Circuit.HALF_OPEN in (previous, state) else logging.WARNING,
            "circuit %s -> %s: %s",
            previous.value,
            state.value,
            reason,
        )
        for listener in self._listeners:
            listener(previous, state, reason)


class BreakerApi:
    """An `Api` whose every call is counted by a `CircuitBreaker`.

    A `TlsError` is not counted: the coordinator was reached but cannot be trusted, which
    no waiting mends; `on_untrusted` hears of it (the bot halts) instead.
    """

    def __init__(
        self,
        api: Api,
        breaker: CircuitBreaker,
        on_untrusted: Callable[[TlsError], None] | None = None,
    ) -> None:
        self._api = api
        self.breaker = breaker
        self._on_untrusted = on_untrusted

    def authenticate(self, token: str | None) -> None:
        self._api.authenticate(token)

    async def _count(self, call: Awaitable[T]) -> T:
        try:
            answer = await call
        except TlsError as exc:
            if self._on_untrusted is not None:
                self._on_untrusted(exc)
            raise
        except CoordinatorError as exc:
            self.breaker.record(exc)
            raise
        self.breaker.record(None)
        return answer

    async def register(self, request: m.RegisterRequest) -> m.RegisterResponse:
        return await self._count(self._api.register(request))

    async def heartbeat(self, bot_id: str, request: m.HeartbeatRequest) -> m.HeartbeatResponse:
        return await self._count(self._api.heartbeat(bot_id, request))

    async def claim(self, request: m.ClaimRequest) -> m.ClaimResponse:
        return await self._count(self._api.claim(request))

    async def complete(self, job_id: str, request: m.CompleteRequest) -> None:
        await self._count(self._api.complete(job_id, request))

    async def fail(self, job_id: str, request: m.FailRequest) -> None:
        await self._count(self._api.fail(job_id, request))

    async def report_batch(self, request: m.BatchReportRequest) -> m.BatchReportResponse:
        return await self._count(self._api.report_batch(request))

    async def progress(self, job_id: str, request: m.ProgressRequest) -> None:
        await self._count(self._api.progress(job_id, request))

    async def logs(self, job_id: str, request: LogBatch) -> None:
        await self._count(self._api.logs(job_id, request))

    async def logs_bulk(self, request: BulkLogRequest) -> BulkLogResponse:
        return await self._count(self._api.logs_bulk(request))

    async def deregister(self, bot_id: str, request: m.DeregisterRequest) -> None:
        await self._count(self._api.deregister(bot_id, request))

    async def release(self, request: ReleaseRequest) -> ReleaseResponse:
        return await self._count(self._api.release(request))
