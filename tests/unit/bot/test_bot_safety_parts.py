"""The parts that keep a bot safe, on their own: circuit breaker, quarantine, watchdog, loop
lag, handler threads, the state-folder checks and the halt messages."""

from __future__ import annotations

import asyncio
import contextvars
import errno
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from bot.agent import hints
from bot.agent.quarantine import QUARANTINE_FILE, CrashLoop, Quarantine
from bot.agent.watchdog import LoopLag, Watchdog
from bot.errors import (
    AuthError,
    IdentityTakenError,
    NetworkError,
    OutboxError,
    OverloadedError,
    ServerError,
    SettingsError,
    StateDirError,
)
from bot.identity import Identity, IdentityStore
from bot.link.circuit import BreakerApi, Circuit, CircuitBreaker, unreachable
from bot.reports.outbox import Outbox
from bot.settings import Settings
from bot.testing import FailingDisk, FakeCoordinator
from bot.work import threads as bot_threads
from bot.work.threads import HandlerThreads
from botfleet.clock import FakeClock
from botfleet.protocol import messages as m

from .conftest import GENEROUS_S, eventually

# ---------------------------------------------------------------- circuit breaker


def test_failures_in_a_row_open_the_circuit_and_an_answer_closes_it() -> None:
    changes: list[tuple[Circuit, Circuit]] = []
    breaker = CircuitBreaker(3, lambda a, b, why: changes.append((a, b)))
    breaker.record(NetworkError("down"))
    breaker.record(ServerError(502, "bad gateway"))
    breaker.record(None)  # an answer in between: the count starts again
    breaker.record(NetworkError("down"))
    breaker.record(NetworkError("down"))
    assert not breaker.is_open
    breaker.record(NetworkError("down"))
    assert breaker.opened == 1 and changes[-1] == (Circuit.CLOSED, Circuit.OPEN)

    breaker.probe()
    assert changes[-1][1] is Circuit.HALF_OPEN and breaker.is_open
    breaker.record(NetworkError("still down"))  # the probe failed: open again
    assert changes[-1][1] is Circuit.OPEN
    breaker.probe()
    breaker.record(OverloadedError(503, "busy"))  # shedding load is an answer
    assert breaker.state is Circuit.CLOSED and breaker.failures == 0
    assert changes == [
        (Circuit.CLOSED, Circuit.OPEN),
        (Circuit.OPEN, Circuit.HALF_OPEN),
        (Circuit.HALF_OPEN, Circuit.OPEN),
        (Circuit.OPEN, Circuit.HALF_OPEN),
        (Circuit.HALF_OPEN, Circuit.CLOSED),
    ]
    assert breaker.opened == 1  # re-opening after a failed probe is the same outage


def test_what_counts_as_unreachable() -> None:
    assert unreachable(NetworkError("x")) and unreachable(ServerError(500, "x"))
    assert not unreachable(OverloadedError(429, "x")) and not unreachable(AuthError(401, "x"))
    breaker = CircuitBreaker(1)
    breaker.probe()  # closed: a probe changes nothing
    assert breaker.state is Circuit.CLOSED
    with pytest.raises(ValueError, match="at least 1"):
        CircuitBreaker(0)


async def test_every_call_through_the_breaker_counts() -> None:
    fake = FakeCoordinator(features=list(m.ALL_FEATURES))
    breaker = CircuitBreaker(2)
    api = BreakerApi(fake, breaker)
    api.authenticate("t")
    assert fake.token == "t"
    answer = await api.register(
        m.RegisterRequest(bot_key="k", instance_id="i", version="1.0.0", capabilities=["sum"])
    )
    job_id = fake.add_job("sum", {"a": 1, "b": 1})
    await api.claim(m.ClaimRequest(bot_id=answer.bot_id, operations=["sum"]))
    await api.heartbeat(answer.bot_id, m.HeartbeatRequest(instance_id="i"))
    await api.progress(job_id, m.ProgressRequest(instance_id="i", progress=0.5))
    await api.report_batch(
        m.BatchReportRequest(
            instance_id="i", reports=[m.ReportItem(job_id=job_id, action="complete", result={})]
        )
    )
    await api.complete(job_id, m.CompleteRequest(instance_id="i", result={}))
    fake.unreachable = True
    with pytest.raises(NetworkError):
        await api.fail(job_id, m.FailRequest(instance_id="i", error="x"))
    with pytest.raises(NetworkError):
        await api.deregister(answer.bot_id, m.DeregisterRequest(instance_id="i"))
    assert breaker.is_open


# ---------------------------------------------------------------- quarantine


def test_crash_loop_counts_per_operation() -> None:
    loop = CrashLoop(3)
    assert loop.note("a", "boom") is None
    assert loop.note("b", "bang") is None  # another handler: its own streak
    assert loop.note("a", "boom") is None
    assert loop.note("a", None) is None  # a success ends the streak
    assert loop.note("a", "boom") is None and loop.note("a", "boom") is None
    reason = loop.note("a", "boom")
    assert reason is not None and "'a' failed 3 times in a row (boom)" in reason
    assert CrashLoop(0).note("a", "boom") is None  # 0: never


def test_quarantine_is_kept_across_restarts_until_released(tmp_path: Path) -> None:
    first = Quarantine(tmp_path, crash_loop_limit=2)
    assert not first.active
    assert first.note_job("x", "bug") is False
    assert first.note_job("x", "bug") is True
    assert first.active and "crash loop" in (first.reason or "")
    assert first.enter("again") is False

    second = Quarantine(tmp_path, crash_loop_limit=2)
    second.load()
    assert second.reason == first.reason
    assert second.release() is True and not second.active
    assert not (tmp_path / QUARANTINE_FILE).exists()
    assert second.release() is False

    third = Quarantine(tmp_path, crash_loop_limit=2)
    third.load()
    assert not third.active


def test_quarantine_file_problems_are_logged_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / QUARANTINE_FILE).write_text("{not json")
    broken = Quarantine(tmp_path, crash_loop_limit=1)
    broken.load()
    assert not broken.active and "unreadable" in caplog.text

    disk = FailingDisk()
    disk.rewrite_errno = errno.EROFS
    read_only = Quarantine(tmp_path, disk=disk, crash_loop_limit=1)
    assert read_only.enter("told so")
    assert "a restart forgets the quarantine" in caplog.text

    unreadable = Quarantine(tmp_path / "file" / "below", crash_loop_limit=1)
    (tmp_path / "file").write_text("x")
    unreadable.load()
    assert "cannot read" in caplog.text and not unreadable.active


def test_quarantine_release_that_cannot_remove_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Sticky(FailingDisk):
        def remove(self, path: Path) -> None:
            raise OSError(errno.EROFS, "read-only file system")

    quarantine = Quarantine(tmp_path, disk=Sticky(), crash_loop_limit=0)
    quarantine.enter("told so")
    assert quarantine.release()
    assert "a restart would quarantine again" in caplog.text


# ---------------------------------------------------------------- watchdog and loop lag


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
    """Each sleep takes `stall_s` longer than asked: a blocked event loop."""

    def __init__(self, stall_s: float) -> None:
        super().__init__()
        self.stall_s = stall_s

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds + self.stall_s)


async def test_loop_lag_reports_stalls_above_the_limit() -> None:
    stalls: list[float] = []
    lag = LoopLag(1.0, 2.0, stalls.append, clock=StallingClock(0.5))
    stop = asyncio.Event()
    task = asyncio.create_task(lag.run(stop))
    await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 30)
    assert lag.last_s == pytest.approx(0.5) and stalls == []  # late, not stalled

    lag.measured(3.5)
    assert stalls == [3.5] and lag.stalls == 1 and lag.max_s == 3.5


# ---------------------------------------------------------------- handler threads


async def test_a_thread_left_behind_keeps_its_hold_until_it_ends() -> None:
    threads = HandlerThreads()
    release = threading.Event()
    ended, started = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()

    def blocking(value: int) -> int:
        loop.call_soon_threadsafe(started.set)
        release.wait(30)
        return value * 2

    async def call() -> int:
        result: int = await threads.call(blocking, 21, "job:x")
        return result

    task = asyncio.create_task(call())
    await asyncio.wait_for(started.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert threads.hold(task, ended.set) is True
    assert threads.left_behind == 1
    release.set()
    await asyncio.wait_for(ended.wait(), 30)
    assert threads.running == 0 and threads.left_behind == 0
    assert threads.hold(task, ended.set) is False


async def test_thread_results_and_errors_reach_the_caller() -> None:
    threads = HandlerThreads()

    def fail(value: int) -> int:
        raise ValueError(f"bad {value}")

    assert await threads.call(lambda value: value + 1, 1, "t") == 2
    with pytest.raises(ValueError, match="bad 3"):
        await threads.call(fail, 3, "t")
    assert threads.running == 0


def _seen_by(seen: list[tuple[int, str]]) -> Callable[[int], int]:
    def handler(value: int) -> int:
        thread = threading.current_thread()
        seen.append((thread.ident or 0, thread.name))
        assert thread.daemon and thread is not threading.main_thread()
        return value

    return handler


async def test_a_thread_that_finished_takes_the_next_call_under_its_name() -> None:
    threads = HandlerThreads()
    seen: list[tuple[int, str]] = []
    assert await threads.call(_seen_by(seen), 1, "job:a") == 1
    await eventually(lambda: threads.idle == 1, "the thread waits for the next call")
    assert await threads.call(_seen_by(seen), 2, "job:b") == 2
    (first, first_name), (second, second_name) = seen
    assert first == second and (first_name, second_name) == ("job:a", "job:b")
    await eventually(lambda: threads.idle == 1, "the thread waits again")
    assert threads.running == 0


async def test_calls_at_once_never_share_or_wait_for_a_thread() -> None:
    threads = HandlerThreads()
    await threads.call(lambda value: value, 0, "warm")  # one thread waits now
    await eventually(lambda: threads.idle == 1, "a waiting thread")
    release = threading.Event()
    started: list[int] = []
    lock = threading.Lock()

    def blocking(value: int) -> int:
        with lock:
            started.append(threading.get_ident())
        release.wait(GENEROUS_S)
        return value

    calls = [asyncio.create_task(threads.call(blocking, n, f"job:{n}")) for n in range(3)]
    # All three run at once (none queued behind another), each in a thread of its own.
    await eventually(lambda: len(started) == 3, "three handlers running at once")
    assert len(set(started)) == 3 and threads.running == 3
    release.set()
    assert await asyncio.gather(*calls) == [0, 1, 2]


async def test_each_call_sees_the_context_of_its_task() -> None:
    threads = HandlerThreads()
    current: contextvars.ContextVar[str] = contextvars.ContextVar("current", default="none")

    async def call_as(who: str) -> str:
        current.set(who)
        result: str = await threads.call(lambda _: current.get(), None, f"job:{who}")
        return result

    assert await asyncio.create_task(call_as("first")) == "first"
    await eventually(lambda: threads.idle == 1, "a waiting thread")
    assert await asyncio.create_task(call_as("second")) == "second"


def _current_thread(_: object) -> threading.Thread:
    return threading.current_thread()


def _current_and_name(_: object) -> tuple[threading.Thread, str]:
    return threading.current_thread(), threading.current_thread().name


async def test_no_more_threads_wait_than_idle_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bot_threads, "IDLE_KEPT", 1)
    threads = HandlerThreads()
    release = threading.Event()

    def blocking(_: object) -> threading.Thread:
        release.wait(GENEROUS_S)
        return threading.current_thread()

    calls = [asyncio.create_task(threads.call(blocking, None, f"job:{n}")) for n in range(2)]
    await eventually(lambda: threads.running == 2, "two handlers running")
    release.set()
    used = await asyncio.gather(*calls)
    # One waits for the next call; the other ended, as there was no room for it.
    await eventually(lambda: sum(thread.is_alive() for thread in used) == 1, "one ended")
    assert threads.idle == 1


async def test_a_thread_waiting_idle_s_for_nothing_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bot_threads, "IDLE_S", 0.01)
    threads = HandlerThreads()
    used = await threads.call(_current_thread, None, "job:a")
    await eventually(lambda: not used.is_alive(), "the idle thread ended")
    assert threads.idle == 0
    again, name = await threads.call(_current_and_name, None, "job:b")  # a new thread
    assert again is not used and name == "job:b"


# ---------------------------------------------------------------- state folder checks


def test_outbox_check_notices_a_file_or_folder_gone(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with Outbox(state) as outbox:
        outbox.check()
        outbox.path.unlink()
        with pytest.raises(OutboxError, match="no longer the file"):
            outbox.check()
    with Outbox(state) as outbox:
        moved = tmp_path / "moved"
        state.rename(moved)
        state.write_text("a file where the folder was")
        with pytest.raises(OutboxError, match="no longer the file"):
            outbox.check()
        state.unlink()
        moved.rename(state)
        outbox.check()


def test_outbox_check_probes_the_folder(tmp_path: Path) -> None:
    class ReadOnly(FailingDisk):
        def probe_dir(self, path: Path) -> None:
            raise OSError(errno.EACCES, os.strerror(errno.EACCES))

    with (
        Outbox(tmp_path, disk=ReadOnly()) as outbox,
        pytest.raises(OutboxError, match="cannot write in"),
    ):
        outbox.check()


def test_identity_check(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = IdentityStore(tmp_path, make_instance_id=lambda: "inst_1")
    mine = store.rotate_instance_id(store.load("w", "host", "Linux"))
    store.check(mine)
    store.path.unlink()
    store.check(mine)  # written again
    assert "was removed" in caplog.text and store.load("w", "host", "Linux") == mine

    other = IdentityStore(tmp_path, make_instance_id=lambda: "inst_2")
    other.rotate_instance_id(other.load("w", "host", "Linux"))
    with pytest.raises(IdentityTakenError, match="another bot process"):
        store.check(mine)
    store.path.write_bytes(msgspec.json.encode({"bot_key": mine.bot_key, "name": "w"}))
    with pytest.raises(IdentityTakenError):
        store.check(mine)
    assert isinstance(IdentityTakenError(), StateDirError)
    assert Identity("k", "w").instance_id == ""


# ---------------------------------------------------------------- halt messages


def test_every_halt_says_why_and_what_to_do(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    errors = [
        hints.bad_setting(SettingsError("MAX_CONCURRENCY", "must be between 1 and 10000")),
        hints.state_dir(settings, StateDirError("cannot write")),
        hints.outbox(settings, OutboxError("disk full")),
        hints.identity(settings, IdentityTakenError("taken")),
        hints.refused(settings, AuthError(401, "bad token")),
        hints.crashed("heartbeat", RuntimeError("bug")),
    ]
    for error in errors:
        assert error.why and error.todo and "\n" not in str(error)
        assert str(error) == f"{error.why}. {error.todo}"
    assert str(tmp_path) in errors[2].todo and "BOT_STATE_DIR" in errors[2].todo
    assert "BOT_ENROLL_TOKEN" in errors[4].todo


def test_logging_is_quiet_about_half_open(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    breaker = CircuitBreaker(1)
    breaker.record(NetworkError("down"))
    breaker.probe()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "circuit closed -> open: 1 failures in a row, the last: down"
    ]
