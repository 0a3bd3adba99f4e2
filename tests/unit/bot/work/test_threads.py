"""Plain handlers' threads: kept for the next call, never shared, abandoned and counted."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable

import pytest

from bot.work import threads as bot_threads
from bot.work.threads import HandlerThreads
from tests.unit.bot.conftest import GENEROUS_S, eventually


async def test_an_abandoned_thread_is_counted_until_it_ends_and_never_reused() -> None:
    threads = HandlerThreads()
    release = threading.Event()
    started = asyncio.Event()
    loop = asyncio.get_running_loop()
    used: list[threading.Thread] = []

    def blocking(value: int) -> int:
        used.append(threading.current_thread())
        loop.call_soon_threadsafe(started.set)
        release.wait(GENEROUS_S)
        return value * 2

    async def call() -> int:
        result: int = await threads.call(blocking, 21, "job:x")
        return result

    task = asyncio.create_task(call())
    await asyncio.wait_for(started.wait(), GENEROUS_S)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert threads.abandon(task) is True
    assert threads.abandon(task) is False  # counted once
    assert (threads.abandoned, threads.abandoned_total) == (1, 1)
    # A call meanwhile gets a thread of its own, never the abandoned one.
    assert await threads.call(_current_thread, None, "job:y") is not used[0]
    release.set()
    await eventually(lambda: not used[0].is_alive(), "the abandoned thread ended")
    assert threads.running == 0 and (threads.abandoned, threads.abandoned_total) == (0, 1)
    assert threads.abandon(task) is False
    # Once its handler returned it ended: it never waits for the next call.
    assert await threads.call(_current_thread, None, "job:z") is not used[0]


async def test_a_thread_that_ended_is_not_abandoned() -> None:
    threads = HandlerThreads()
    task = asyncio.create_task(threads.call(lambda value: value, 1, "job:a"))
    assert await task == 1
    assert threads.abandon(task) is False and threads.abandoned_total == 0


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
