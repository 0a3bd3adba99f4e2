"""The reaper expires what the clock says is over, logs it, and survives a failing store."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from botfleet.clock import FakeClock
from coordinator.reaper import Reaper
from coordinator.store.base import ExpiryOutcome, Retention, StoreError, SweepOutcome
from tests.support.processes import wait_until_async

NOW = datetime(2026, 1, 19, 10, 0, tzinfo=UTC)
GENEROUS_S = 30.0


async def _eventually(predicate: Callable[[], bool]) -> None:
    async def check() -> bool:
        return predicate()

    await wait_until_async(check, GENEROUS_S, "the condition")


class Intervals:
    """The reaper's pause, ended by the test one interval at a time: no real time passes."""

    def __init__(self) -> None:
        self._ends: asyncio.Queue[None] = asyncio.Queue()

    async def pause(self, stop: asyncio.Event) -> None:
        await self._ends.get()
        self._ends.task_done()

    async def let_pass(self, count: int) -> None:
        """End `count` intervals; return once the reaper has gone on to its next pause
        (or ended) after the last one."""
        for _ in range(count):
            self._ends.put_nowait(None)
        await self._ends.join()


class LeasesOnly:
    """A store with one job lease and one bot lease, judged by the injected clock."""

    def __init__(self, clock: FakeClock, failures: int = 0) -> None:
        self.clock = clock
        self.job_lease_until: datetime | None = NOW + timedelta(seconds=180)
        self.bot_lease_until: datetime | None = NOW + timedelta(seconds=120)
        self.failures_left = failures
        self.calls = 0

    async def expire_leases(self) -> ExpiryOutcome:
        self.calls += 1
        if self.failures_left:
            self.failures_left -= 1
            raise StoreError("database is locked")
        now = self.clock.now()
        bots: tuple[str, ...] = ()
        jobs: tuple[str, ...] = ()
        if self.bot_lease_until is not None and self.bot_lease_until <= now:
            bots, self.bot_lease_until = ("bot_1",), None
        if self.job_lease_until is not None and self.job_lease_until <= now:
            jobs, self.job_lease_until = ("job_1",), None
        return ExpiryOutcome(bots_offline=bots, requeued=jobs)


async def test_expires_only_what_the_clock_says_is_over(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(NOW)
    store = LeasesOnly(clock)
    seen: list[ExpiryOutcome] = []
    reaper = Reaper(store, interval_s=1.0, observe=seen.append)  # type: ignore[arg-type]
    assert await reaper.run_once() == ExpiryOutcome()
    clock.advance(121)
    with caplog.at_level(logging.INFO, logger="coordinator.reaper"):
        outcome = await reaper.run_once()
    assert outcome == ExpiryOutcome(bots_offline=("bot_1",))
    assert "1 bot(s) offline [bot_1]" in caplog.text
    clock.advance(60)
    assert await reaper.run_once() == ExpiryOutcome(requeued=("job_1",))
    assert [o.requeued for o in seen] == [(), (), ("job_1",)]


async def test_a_failure_is_logged_and_the_next_pass_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock(NOW + timedelta(seconds=500))
    store = LeasesOnly(clock, failures=2)
    intervals = Intervals()
    reaper = Reaper(store, interval_s=1.0, pause=intervals.pause)  # type: ignore[arg-type]
    stop = asyncio.Event()
    with caplog.at_level(logging.ERROR, logger="coordinator.reaper"):
        task = asyncio.create_task(reaper.run(stop))
        await intervals.let_pass(2)  # a pass right away, then one after each interval
        assert store.job_lease_until is None
        stop.set()
        await intervals.let_pass(1)
        await task
    assert reaper.failures == 2
    assert store.calls == 3
    assert caplog.text.count("expiring leases failed") == 2


async def test_stops_promptly_between_passes() -> None:
    store = LeasesOnly(FakeClock(NOW))
    reaper = Reaper(store, interval_s=3600)  # type: ignore[arg-type]
    stop = asyncio.Event()
    task = asyncio.create_task(reaper.run(stop))
    await _eventually(lambda: store.calls > 0)
    stop.set()
    async with asyncio.timeout(GENEROUS_S):
        await task
    assert store.calls == 1


async def test_after_a_start_the_first_pass_waits_out_the_grace() -> None:
    # The coordinator was down: every lease looks over, but the bots have not had a
    # chance to heartbeat yet.
    clock = FakeClock(NOW + timedelta(seconds=500))
    store = LeasesOnly(clock)
    intervals = Intervals()
    reaper = Reaper(
        store,  # type: ignore[arg-type]
        interval_s=1.0,
        clock=clock,
        startup_grace_s=120,
        pause=intervals.pause,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(reaper.run(stop))
    await intervals.let_pass(20)  # many intervals go by; the clock does not reach the grace's end
    assert store.calls == 0 and reaper.runs == 0
    clock.advance(120)
    await intervals.let_pass(1)
    assert store.calls == 1
    stop.set()
    await intervals.let_pass(1)
    await task
    assert store.job_lease_until is None and store.bot_lease_until is None


class Sweeping(LeasesOnly):
    """Also sweeps: `batches` answers in turn, a StoreError where one is None."""

    def __init__(self, clock: FakeClock, batches: list[SweepOutcome | None]) -> None:
        super().__init__(clock)
        self.batches = batches
        self.sweeps = 0

    async def sweep(self, policy: Retention) -> SweepOutcome:
        self.sweeps += 1
        batch = self.batches.pop(0)
        if batch is None:
            raise StoreError("database is locked")
        return batch


async def test_a_pass_sweeps_batch_after_batch_until_one_is_short(
    caplog: pytest.LogCaptureFixture,
) -> None:
    full = SweepOutcome(jobs_deleted=2, more=True)
    last = SweepOutcome(expired=("job_9",), jobs_deleted=1, bots_forgotten=1)
    store = Sweeping(FakeClock(NOW), [full, full, last, SweepOutcome()])
    seen: list[SweepOutcome] = []
    reaper = Reaper(
        store,  # type: ignore[arg-type]
        interval_s=1.0,
        retention=Retention(batch_size=2),
        observe_sweep=seen.append,
    )
    with caplog.at_level(logging.INFO, logger="coordinator.reaper"):
        await reaper.run_once()
    assert store.sweeps == 3 and seen == [full, full, last]
    assert "1 queued job(s) expired [job_9], 5 finished job(s) deleted" in caplog.text
    assert "1 offline bot(s) forgotten" in caplog.text
    with caplog.at_level(logging.INFO, logger="coordinator.reaper"):
        caplog.clear()
        await reaper.run_once()
    assert store.sweeps == 4
    assert "expired" not in caplog.text  # a sweep that did nothing says nothing
    deleted_only = SweepOutcome(jobs_deleted=3)
    store.batches.append(deleted_only)
    with caplog.at_level(logging.INFO, logger="coordinator.reaper"):
        await reaper.run_once()
    assert "reaper: 3 finished job(s) deleted\n" in caplog.text


async def test_a_failed_sweep_is_counted_and_the_next_pass_sweeps_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = Sweeping(
        FakeClock(NOW), [SweepOutcome(jobs_deleted=1, more=True), None, SweepOutcome()]
    )
    reaper = Reaper(store, interval_s=1.0, retention=Retention())  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="coordinator.reaper"):
        await reaper.run_once()
    assert (store.sweeps, reaper.failures) == (2, 1)
    assert "sweeping failed" in caplog.text
    await reaper.run_once()
    assert store.sweeps == 3


async def test_without_a_retention_the_reaper_does_not_sweep() -> None:
    store = Sweeping(FakeClock(NOW), [])
    reaper = Reaper(store, interval_s=1.0)  # type: ignore[arg-type]
    await reaper.run_once()
    assert (store.calls, store.sweeps) == (1, 0)


async def test_sweeps_run_during_the_grace() -> None:
    clock = FakeClock(NOW)
    store = Sweeping(clock, [SweepOutcome(jobs_deleted=1), SweepOutcome(), SweepOutcome()])
    intervals = Intervals()
    reaper = Reaper(
        store,  # type: ignore[arg-type]
        interval_s=1.0,
        clock=clock,
        startup_grace_s=120,
        pause=intervals.pause,
        retention=Retention(),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(reaper.run(stop))
    await intervals.let_pass(2)
    assert (store.calls, store.sweeps) == (0, 3)
    stop.set()
    await intervals.let_pass(1)
    await task
