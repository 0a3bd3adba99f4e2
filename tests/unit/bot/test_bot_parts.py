"""Small parts: backoff, slots, lifecycle table, waiting, supervisor, signals, host load."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import threading

import pytest

from bot.agent.lifecycle import FINAL_STATES, HISTORY_KEPT, TRANSITIONS, WORK_STATES, Lifecycle
from bot.agent.signals import stop_on_signals
from bot.agent.supervisor import Supervisor
from bot.errors import (
    BotError,
    InvalidTransition,
    NetworkError,
    OverloadedError,
    PluginError,
    SettingsError,
)
from bot.link.backoff import Backoff, backoff_ms, retry_delay_s
from bot.state import Assignment, BotState, Job
from bot.system.host import HostFacts, ProcessLoad
from bot.testing import ScaledClock
from bot.waiting import sleep_or
from bot.work.slots import Slots
from botfleet.clock import FakeClock, SystemClock
from botfleet.protocol import messages as m

S = BotState
GENEROUS_S = 30.0


# ---------------------------------------------------------------- backoff


def test_backoff_is_full_jitter_between_min_and_the_capped_ceiling() -> None:
    rng = random.Random(1)
    for attempt in range(12):
        ceiling = min(60_000, 500 * 2**attempt)
        for _ in range(50):
            assert 500 <= backoff_ms(attempt, 500, 60_000, rng) <= ceiling


def test_backoff_spreads_and_reaches_the_cap() -> None:
    rng = random.Random(2)
    late = [backoff_ms(20, 500, 60_000, rng) for _ in range(200)]
    assert max(late) > 50_000 and min(late) < 10_000  # jitter over the whole window
    assert backoff_ms(10_000, 500, 60_000, rng) <= 60_000  # huge attempts do not overflow


def test_backoff_with_min_above_max_stays_at_max() -> None:
    assert backoff_ms(0, 900, 100, random.Random(3)) == 100


def test_backoff_refuses_negative_attempts() -> None:
    with pytest.raises(ValueError, match="attempt"):
        backoff_ms(-1, 1, 2, random.Random())


def test_backoff_counter_grows_and_resets() -> None:
    backoff = Backoff(100, 10_000, random.Random(4))
    first = backoff.next_s()
    assert first == pytest.approx(0.1)
    for _ in range(5):
        backoff.next_s()
    assert backoff.attempt == 6
    backoff.reset()
    assert backoff.attempt == 0 and backoff.next_s() == pytest.approx(0.1)


# ---------------------------------------------------------------- slots


async def test_slots_resize_keeps_the_accounting() -> None:
    slots = Slots(2)
    slots.take()
    slots.take()
    assert (slots.free, slots.in_use) == (0, 2)
    slots.resize(1)  # shrink below what runs: nothing is stopped, nothing is free
    assert (slots.free, slots.in_use, slots.capacity) == (0, 2, 1)
    slots.release()
    assert slots.free == 0
    slots.release()
    assert slots.free == 1
    slots.changed.clear()
    slots.resize(5)
    assert slots.changed.is_set() and slots.free == 5
    slots.changed.clear()
    slots.resize(5)
    assert not slots.changed.is_set()
    slots.take()  # take never waits, even over capacity
    slots.resize(0)
    assert slots.free == 0 and slots.in_use == 1


def test_slots_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        Slots(-1)
    with pytest.raises(ValueError):
        Slots(1).resize(-1)
    with pytest.raises(RuntimeError, match="without a matching"):
        Slots(1).release()


# ---------------------------------------------------------------- lifecycle


def test_every_state_has_a_row_and_final_states_are_final() -> None:
    assert set(TRANSITIONS) == set(BotState)
    for state in FINAL_STATES:
        assert TRANSITIONS[state] == frozenset()
    for state in set(BotState) - FINAL_STATES:
        assert TRANSITIONS[state], state


def test_the_main_path_is_allowed() -> None:
    lifecycle = Lifecycle()
    path = [S.REGISTER, S.BACKOFF, S.REGISTER, S.SYNC, S.IDLE, S.CLAIM, S.PROCESS, S.REPORT]
    path += [S.IDLE, S.DEGRADED_NET, S.REGISTER, S.SYNC, S.QUARANTINED, S.IDLE, S.DRAINING]
    path += [S.SHUTDOWN]
    for state in path:
        lifecycle.move(state)
    assert lifecycle.history == [S.BOOTSTRAP, *path]


def test_the_history_keeps_only_the_latest_moves() -> None:
    lifecycle = Lifecycle()
    for state in [S.REGISTER, S.SYNC, S.IDLE]:
        lifecycle.move(state)
    cycle = [S.CLAIM, S.PROCESS, S.REPORT, S.IDLE]
    for _ in range(3 * HISTORY_KEPT):  # a bot that ran 3,000 jobs
        for state in cycle:
            lifecycle.move(state)
    assert HISTORY_KEPT <= len(lifecycle.history) <= 2 * HISTORY_KEPT
    assert lifecycle.history[-4:] == cycle and lifecycle.state is S.IDLE


def test_a_move_not_in_the_table_raises() -> None:
    lifecycle = Lifecycle()
    with pytest.raises(InvalidTransition, match="no move from BOOTSTRAP to PROCESS"):
        lifecycle.move(S.PROCESS)
    lifecycle.move(S.BOOTSTRAP)  # staying put is no move
    assert lifecycle.history == [S.BOOTSTRAP]


def test_a_custom_table_extends_the_lifecycle() -> None:
    table = {**TRANSITIONS, S.BOOTSTRAP: TRANSITIONS[S.BOOTSTRAP] | {S.IDLE}}
    lifecycle = Lifecycle(table)
    lifecycle.move(S.IDLE)
    assert lifecycle.state is S.IDLE


def test_listeners_and_quiet_work_moves(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    moves: list[tuple[BotState, BotState, str]] = []
    lifecycle = Lifecycle(initial=S.SYNC)
    lifecycle.subscribe(lambda a, b, why: moves.append((a, b, why)))
    lifecycle.move(S.IDLE, "registered")
    lifecycle.move(S.CLAIM)
    lifecycle.move(S.CLAIM)  # staying put is no move
    assert moves == [(S.SYNC, S.IDLE, "registered"), (S.IDLE, S.CLAIM, "")]
    info = [r for r in caplog.records if r.levelname == "INFO"]
    assert [r.getMessage() for r in info] == ["state SYNC -> IDLE (registered)"]
    debug = [
        r for r in caplog.records if r.levelname == "DEBUG" and r.name == "bot.agent.lifecycle"
    ]
    assert [r.getMessage() for r in debug] == ["state IDLE -> CLAIM"]
    assert lifecycle.working and not lifecycle.final


async def test_wait_for_a_state() -> None:
    lifecycle = Lifecycle()
    waiter = asyncio.create_task(lifecycle.wait_for({S.SYNC}))
    lifecycle.move(S.REGISTER)
    await asyncio.sleep(0)
    assert not waiter.done()
    lifecycle.move(S.SYNC)
    assert await asyncio.wait_for(waiter, 30) is S.SYNC
    assert {S.IDLE, S.CLAIM, S.PROCESS, S.REPORT} == WORK_STATES


async def test_several_wait_for_the_states_they_want() -> None:
    lifecycle = Lifecycle(initial=S.SYNC)
    working = asyncio.create_task(lifecycle.wait_for({S.CLAIM}))
    stopping = asyncio.create_task(lifecycle.wait_for({S.DRAINING}))
    await asyncio.sleep(0)
    lifecycle.move(S.IDLE)
    lifecycle.move(S.CLAIM)  # two moves before the waiters look: they see the latest
    assert await asyncio.wait_for(working, 30) is S.CLAIM
    assert not stopping.done()
    lifecycle.move(S.DRAINING)
    assert await asyncio.wait_for(stopping, 30) is S.DRAINING
    assert await asyncio.wait_for(lifecycle.wait_for({S.DRAINING}), 30) is S.DRAINING


# ---------------------------------------------------------------- values


def test_job_progress_checks_the_fraction() -> None:
    seen: list[tuple[str, float, str | None]] = []
    job = Job("job_1", "sum", {}, on_progress=lambda *args: seen.append(args))
    job.progress(1, "done")
    assert seen == [("job_1", 1.0, "done")]
    for bad in (-0.1, 1.5, True):
        with pytest.raises(ValueError, match="between 0 and 1"):
            job.progress(bad)
    Job("job_2", "sum", {}).progress(0.5)  # no sink: nothing happens


def test_a_cancelled_job_reads_so_in_a_handler_thread() -> None:
    job = Job("job_1", "sum", {})
    seen: list[bool] = []
    job.cancel()
    reader = threading.Thread(target=lambda: seen.append(job.cancelled()))
    reader.start()
    reader.join(GENEROUS_S)
    assert seen == [True]
    assert not Job("job_2", "sum", {}).cancelled()  # each job its own flag


def test_job_from_the_wire() -> None:
    claimed = m.ClaimedJob(
        id="job_1", op="sum", lease_until="2026-01-19T10:15:00Z", timeout_s=0, attempt=3
    )
    job = Job.from_claimed(claimed)
    assert job.lease_until is not None and job.lease_until.minute == 15
    assert job.timeout_s is None and job.attempt == 3
    unreadable = Job.from_claimed(m.ClaimedJob(id="job_2", op="sum", lease_until="tomorrow"))
    assert unreadable.lease_until is None


def test_assignment_claimable() -> None:
    capabilities = ("subtract", "sum")
    assert Assignment().claimable(capabilities) == capabilities
    assert Assignment(("sum", "multiply")).claimable(capabilities) == ("sum",)
    wire = m.Assignment(operations=["sum"], max_concurrency=3, paused=True)
    assert Assignment.from_wire(wire) == Assignment(("sum",), 3, True)


def test_errors_have_default_messages() -> None:
    assert str(BotError()) == "The bot failed."
    assert BotError("custom").message == "custom"
    assert PluginError().retryable is False
    error = SettingsError("X", "bad")
    assert (str(error), error.variable) == ("X: bad", "X")


# ---------------------------------------------------------------- waiting


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


# ---------------------------------------------------------------- supervisor


async def test_supervisor_reports_a_crash_and_refuses_duplicates() -> None:
    supervisor = Supervisor()

    async def crash() -> None:
        raise RuntimeError("bug")

    async def fine() -> None:
        return None

    async def forever() -> None:
        await asyncio.Event().wait()

    supervisor.start("fine", fine())
    supervisor.start("forever", forever())
    with pytest.raises(RuntimeError, match="already runs"):
        supervisor.start("forever", forever())
    supervisor.start("crash", crash())
    await asyncio.wait_for(supervisor.failed.wait(), 30)
    assert supervisor.failure is not None and supervisor.failure[0] == "crash"
    assert "forever" in supervisor and supervisor.names() == ["forever"]
    assert await supervisor.join("fine") is True
    assert await supervisor.join("missing") is True
    hard = asyncio.Event()
    hard.set()
    assert await supervisor.join("forever", hard) is False
    await supervisor.cancel_all()
    assert supervisor.names() == []


# ---------------------------------------------------------------- signals


async def test_signals_are_routed_and_restored() -> None:
    seen: list[str] = []
    got = asyncio.Event()

    def on_signal(name: str) -> None:
        seen.append(name)
        got.set()

    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals(on_signal, (signal.SIGTERM,)):
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(got.wait(), 30)
    assert seen == ["SIGTERM"]
    assert signal.getsignal(signal.SIGTERM) == before


# ---------------------------------------------------------------- host


def test_host_facts_and_load() -> None:
    facts = HostFacts.detect()
    assert facts.cpu_cores >= 1 and facts.mem_mb > 0 and facts.hostname
    clock = FakeClock()
    load = ProcessLoad(clock, facts.cpu_cores)
    assert load.sample().cpu == 0.0  # no time passed
    clock.advance(1.0)
    sample = load.sample()
    assert 0.0 <= sample.cpu <= 1.0 and sample.mem_mb > 0


def test_retry_delay_is_the_backoff_or_the_servers_retry_after_whichever_is_longer() -> None:
    busy = OverloadedError(503, "busy", retry_after_s=7.0)
    assert retry_delay_s(2.0, busy) == 7.0
    assert retry_delay_s(9.0, busy) == 9.0
    assert retry_delay_s(2.0, OverloadedError(429, "busy")) == 2.0
    assert retry_delay_s(2.0, NetworkError("down")) == 2.0


def test_retry_delay_is_capped() -> None:
    busy = OverloadedError(503, "busy", retry_after_s=60.0)
    assert retry_delay_s(2.0, busy, cap_s=5.0) == 5.0
    assert retry_delay_s(8.0, NetworkError("down"), cap_s=5.0) == 5.0
    assert retry_delay_s(1.0, NetworkError("down"), cap_s=5.0) == 1.0


def test_backoff_after_an_error_takes_the_next_step_of_the_streak() -> None:
    backoff = Backoff(1000, 1000, random.Random(1))
    assert backoff.after(OverloadedError(503, "busy", retry_after_s=3.0)) == 3.0
    assert backoff.after(NetworkError("down")) == 1.0
    assert backoff.attempt == 2
