"""sleep_or: a clock timeout or events, whichever comes first, leaving no waiter behind."""

from __future__ import annotations

import asyncio

import pytest

from bot.testing import ScaledClock
from bot.waiting import sleep_or
from botfleet.clock import FakeClock, SystemClock

GENEROUS_S = 30.0


async def test_sleep_or_returns_early_on_an_event() -> None:
    clock = FakeClock()
    event = asyncio.Event()
    event.set()
    assert await sleep_or(clock, 10, event) is True
    assert clock.slept == []
    assert await sleep_or(clock, 5, asyncio.Event()) is False
    assert clock.slept == [5]
    assert await sleep_or(clock, 0, asyncio.Event()) is False
    later = asyncio.Event()
    asyncio.get_running_loop().call_soon(later.set)
    assert await sleep_or(clock, None, later) is True


def _waiting_on(event: asyncio.Event) -> int:
    return len(event._waiters)


async def test_sleep_or_wakes_on_any_event_and_leaves_no_waiter_behind() -> None:
    clock = SystemClock()
    first, second = asyncio.Event(), asyncio.Event()
    waiting = asyncio.create_task(sleep_or(clock, None, first, second, second))
    await asyncio.sleep(0)
    assert not waiting.done() and (_waiting_on(first), _waiting_on(second)) == (1, 2)
    second.set()
    assert await asyncio.wait_for(waiting, GENEROUS_S) is True
    assert (_waiting_on(first), _waiting_on(second)) == (0, 0)
    # The events still work as events afterwards.
    first_waits = asyncio.create_task(first.wait())
    await asyncio.sleep(0)
    first.set()
    assert await asyncio.wait_for(first_waits, GENEROUS_S) is True


async def test_sleep_or_times_out_on_the_system_clock() -> None:
    event = asyncio.Event()
    assert await sleep_or(SystemClock(), 0.01, event) is False
    assert _waiting_on(event) == 0
    event.set()  # nothing is woken late


async def test_sleep_or_cancelled_leaves_no_waiter_behind() -> None:
    for clock in (SystemClock(), ScaledClock(0.001)):
        event = asyncio.Event()
        waiting = asyncio.create_task(sleep_or(clock, 60, event))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert _waiting_on(event) == 0


class _ListEvent(asyncio.Event):
    """An event whose waiters are not the deque `sleep_or` shares its future through."""

    def __init__(self) -> None:
        super().__init__()
        self._waiters = []  # type: ignore[assignment]


async def test_sleep_or_waits_in_tasks_on_events_it_cannot_share_a_future_with() -> None:
    clock = FakeClock()
    odd, plain = _ListEvent(), asyncio.Event()
    assert await sleep_or(clock, 5, odd, plain) is False
    assert clock.slept == [5]
    asyncio.get_running_loop().call_soon(odd.set)
    assert await asyncio.wait_for(sleep_or(clock, None, odd, plain), GENEROUS_S) is True
    assert (len(odd._waiters), _waiting_on(plain)) == (0, 0)
