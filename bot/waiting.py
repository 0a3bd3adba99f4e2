"""Waiting on several things at once: a (clock) timeout and events, whichever comes first.

The bot's loops wait on "stop", "wake up" and "interval passed" together, as
Procrastinate's worker loop does; the clock is injected so tests do not wait.
"""

from __future__ import annotations

import asyncio

from botfleet.clock import Clock


async def sleep_or(clock: Clock, seconds: float | None, *events: asyncio.Event) -> bool:
    """Wait `seconds` on `clock` (None: no limit) or until one of `events` is set.

    Returns True when an event is set. Cancelling the caller cancels the waiting.
    """
    if any(event.is_set() for event in events):
        return True
    if seconds is not None and seconds <= 0:
        await asyncio.sleep(0)
        return any(event.is_set() for event in events)
    waiters: list[asyncio.Future[object]] = [asyncio.ensure_future(e.wait()) for e in events]
    if seconds is not None:
        waiters.append(asyncio.ensure_future(clock.sleep(seconds)))
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
    return any(event.is_set() for event in events)
