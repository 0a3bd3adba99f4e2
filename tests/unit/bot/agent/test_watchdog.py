"""Deadlines on steps, checked every tick of the clock, and the event loop's lag."""

from __future__ import annotations

import asyncio

import pytest

from bot.agent.watchdog import LoopLag, Watchdog
from botfleet.clock import FakeClock


async def test_watchdog_acts_once_on_a_step_past_its_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    watchdog = Watchdog(clock, tick_s=0.5)
    fired: list[str] = []
    with watchdog.guard("slow step", 2.0, lambda: fired.append("slow")) as slow:
        kept = watchdog.guard("quick step", 10.0, lambda: fired.append("quick"))
        with watchdog.guard("finished step", 1.0, lambda: fired.append("finished")):
            pass  # ended in time: dropped
        assert len(watchdog) == 2
        clock.advance(1.9)
        assert watchdog.check() == 0
        clock.advance(0.2)
        assert watchdog.check() == 1 and slow.expired
        assert watchdog.check() == 0  # once
    kept.cancel()
    assert fired == ["slow"] and watchdog.expired == ["slow step"] and len(watchdog) == 0
    assert "slow step still under way after 2.1 s (limit 2.0 s)" in caplog.text


async def test_watchdog_task_checks_every_tick() -> None:
    clock = FakeClock()
    watchdog = Watchdog(clock, tick_s=0.5)
    fired = asyncio.Event()
    watchdog.guard("step", 3.0, fired.set)
    stop = asyncio.Event()
    task = asyncio.create_task(watchdog.run(stop))
    await asyncio.wait_for(fired.wait(), 30)
    stop.set()
    await asyncio.wait_for(task, 30)
    assert clock.slept[:6] == [0.5] * 6


class StallingClock(FakeClock):
    """Each sleep takes `stall_s` longer than asked: a blocked event loop. The sleep number
    `stop_at` sets `stop` instead of ending, so a loop on this clock ends by itself."""

    def __init__(self, stall_s: float, stop: asyncio.Event, stop_at: int) -> None:
        super().__init__()
        self.stall_s = stall_s
        self.stop = stop
        self.stop_at = stop_at

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds + self.stall_s)
        if len(self.slept) == self.stop_at:
            self.stop.set()


async def test_loop_lag_reports_stalls_above_the_limit() -> None:
    stalls: list[float] = []
    stop = asyncio.Event()
    clock = StallingClock(0.5, stop, stop_at=2)  # one measure, then the stop
    lag = LoopLag(1.0, 2.0, stalls.append, clock=clock)
    await asyncio.wait_for(lag.run(stop), 30)
    assert clock.slept == [1.5, 1.5]
    assert lag.last_s == pytest.approx(0.5) and stalls == []  # late, not stalled

    lag.measured(3.5)
    assert stalls == [3.5] and lag.stalls == 1 and lag.max_s == 3.5


def test_every_listener_hears_every_stall() -> None:
    first: list[float] = []
    later: list[float] = []
    lag = LoopLag(1.0, 2.0, first.append)
    lag.subscribe(later.append)
    lag.measured(1.0)
    lag.measured(2.5)
    assert first == later == [2.5] and lag.stalls == 1
