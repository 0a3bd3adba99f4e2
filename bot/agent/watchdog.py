"""Watchdogs: deadlines on the steps that must not take forever, and the event loop's health.

`Watchdog.guard(name, limit_s, on_expire)` puts a deadline on a step (a report
delivery, a drain's grace period, the jobs cancelled at its end); the watchdog task
checks the deadlines every `tick_s` on the bot's clock, logs a step held past its
limit and acts on it (`on_expire`, once). A job's own `timeout_s` is the one deadline
kept elsewhere: `bot.jobs.run` arms it with the job, to the millisecond.

`LoopLag` measures, in real time, how late the event loop wakes up. A lag above the
limit means something blocked the loop (an async handler calling blocking code):
heartbeats and leases wait meanwhile. It is logged with the jobs that ran, counted,
and handed to `on_stall` (the bot sends a heartbeat at once).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from types import TracebackType

from bot.waiting import sleep_or
from botfleet.clock import Clock, SystemClock

log = logging.getLogger(__name__)


Callback = Callable[[], object]


class Guard:
    """One deadline; a context manager that drops it on exit."""

    def __init__(
        self, watchdog: Watchdog, name: str, deadline: float, limit_s: float, on_expire: Callback
    ) -> None:
        self._watchdog = watchdog
        self.name = name
        self.deadline = deadline
        self.limit_s = limit_s
        self.on_expire = on_expire
        self.expired = False

    def cancel(self) -> None:
        self._watchdog.drop(self)

    def __enter__(self) -> Guard:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cancel()


class Watchdog:
    def __init__(self, clock: Clock, tick_s: float) -> None:
        self._clock = clock
        self._tick_s = tick_s
        self._guards: set[Guard] = set()
        self.expired: list[str] = []  # names of the steps that ran out (metrics, tests)

    def __len__(self) -> int:
        return len(self._guards)

    def guard(self, name: str, limit_s: float, on_expire: Callback) -> Guard:
        guard = Guard(self, name, self._clock.monotonic() + limit_s, limit_s, on_expire)
        self._guards.add(guard)
        return guard

    def drop(self, guard: Guard) -> None:
        self._guards.discard(guard)

    def check(self) -> int:
        """Act on every deadline passed; how many there were."""
        now = self._clock.monotonic()
        due = sorted((g for g in self._guards if g.deadline <= now), key=lambda g: g.deadline)
        for guard in due:
            self._guards.discard(guard)
            guard.expired = True
            self.expired.append(guard.name)
            log.warning(
                "watchdog: %s still under way after %.1f s (limit %.1f s); acting",
                guard.name,
                now - guard.deadline + guard.limit_s,
                guard.limit_s,
            )
            guard.on_expire()
        return len(due)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await sleep_or(self._clock, self._tick_s, stop)
            self.check()


class LoopLag:
    """How late the event loop wakes up from a sleep of `tick_s` (real time, seconds)."""

    def __init__(
        self,
        tick_s: float,
        limit_s: float,
        on_stall: Callable[[float], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._tick_s = tick_s
        self._limit_s = limit_s
        self._on_stall: list[Callable[[float], None]] = [] if on_stall is None else [on_stall]
        self._clock: Clock = clock or SystemClock()
        self.last_s = 0.0
        self.max_s = 0.0
        self.stalls = 0

    def subscribe(self, on_stall: Callable[[float], None]) -> None:
        """Call `on_stall(lag_s)` on every stall."""
        self._on_stall.append(on_stall)

    def measured(self, lag_s: float) -> None:
        self.last_s = lag_s
        self.max_s = max(self.max_s, lag_s)
        if lag_s > self._limit_s:
            self.stalls += 1
            for on_stall in self._on_stall:
                on_stall(lag_s)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = self._clock.monotonic()
            if await sleep_or(self._clock, self._tick_s, stop):
                return
            self.measured(max(0.0, self._clock.monotonic() - started - self._tick_s))
