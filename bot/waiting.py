"""Waiting on several things at once: a (clock) timeout and events, whichever comes first.

The bot's loops wait on "stop", "wake up" and "interval passed" together, as
Procrastinate's worker loop does; the clock is injected so tests do not wait.

The report loop waits here once or twice per job, so the wait is made of one future
that every event wakes, not a task per event (which would cost more than the rest of
the wait): `asyncio.Event` has no public way to be told when it is set, so the future
joins the event's own waiters, as `wait()` does. Should an event not look like
CPython's (no `_waiters` deque), a task waits on it instead.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence

from botfleet.clock import Clock, SystemClock


async def sleep_or(clock: Clock, seconds: float | None, *events: asyncio.Event) -> bool:
    """Wait `seconds` on `clock` (None: no limit) or until one of `events` is set.

    Returns True when an event is set. Cancelling the caller cancels the waiting.
    """
    if any(event.is_set() for event in events):
        return True
    if seconds is not None and seconds <= 0:
        await asyncio.sleep(0)
        return any(event.is_set() for event in events)
    if not all(_shares_waiters(event) for event in events):
        await _wait_in_tasks(clock, seconds, events)
        return any(event.is_set() for event in events)
    loop = asyncio.get_running_loop()
    woken: asyncio.Future[object] = loop.create_future()
    for event in events:
        event._waiters.append(woken)  # set() resolves it, as it does wait()'s own
    timer: asyncio.TimerHandle | None = None
    sleeper: asyncio.Future[None] | None = None
    if seconds is not None:
        if type(clock) is SystemClock:  # its sleep is asyncio.sleep: a timer, no task
            timer = loop.call_later(seconds, _wake, woken)
        else:
            sleeper = asyncio.ensure_future(clock.sleep(seconds))
            sleeper.add_done_callback(lambda _: _wake(woken))
    try:
        await woken
    finally:
        for event in events:
            # set() leaves its resolved waiters in place (each `wait()` removes its own).
            while woken in event._waiters:
                event._waiters.remove(woken)
        if timer is not None:
            timer.cancel()
        if sleeper is not None:
            sleeper.cancel()
            await asyncio.gather(sleeper, return_exceptions=True)
    return any(event.is_set() for event in events)


def _shares_waiters(event: asyncio.Event) -> bool:
    return isinstance(getattr(event, "_waiters", None), collections.deque)


def _wake(woken: asyncio.Future[object]) -> None:
    if not woken.done():
        woken.set_result(None)


async def _wait_in_tasks(
    clock: Clock, seconds: float | None, events: Sequence[asyncio.Event]
) -> None:
    waiters: list[asyncio.Future[object]] = [asyncio.ensure_future(e.wait()) for e in events]
    if seconds is not None:
        waiters.append(asyncio.ensure_future(clock.sleep(seconds)))
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
