"""Plain (non-async) handlers run in threads of their own, which the bot cannot stop.

Python cannot interrupt a thread. When a thread handler's job is cancelled (by the
coordinator, a timeout or the end of a drain's grace period), the bot stops waiting
and reports the job at once, but the thread runs on until the handler returns. Such
a thread is *left behind*:

- it keeps its job's slot until it really ends, so MAX_CONCURRENCY stays a true
  bound on the handlers running at once (`hold`);
- it is a daemon thread, so it never keeps the process from exiting;
- the handler can stop early by checking `job.cancelled()` now and then
  (cooperative cancellation).

One thread per call rather than a pool: a pool's threads would be joined at exit
(a stuck handler would hang the shutdown) and would queue handlers behind stuck ones.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Thread:
    name: str
    on_end: Callable[[], None] | None = None  # set once left behind


class HandlerThreads:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._threads: dict[object, _Thread] = {}

    @property
    def running(self) -> int:
        with self._lock:
            return len(self._threads)

    @property
    def left_behind(self) -> int:
        """Threads still running though nobody waits for them any more."""
        with self._lock:
            return sum(1 for thread in self._threads.values() if thread.on_end is not None)

    async def call(self, function: Callable[[Any], Any], argument: Any, name: str) -> Any:
        """`function(argument)` in a new daemon thread (with this task's context variables).

        The key of the thread is the calling task: `hold(task, …)` asks about it later.
        """
        loop = asyncio.get_running_loop()
        result: asyncio.Future[Any] = loop.create_future()
        key = asyncio.current_task()
        context = contextvars.copy_context()

        def target() -> None:
            try:
                value, error = context.run(function, argument), None
            except BaseException as exc:  # handed to the awaiting task, whatever it is
                value, error = None, exc
            with self._lock:
                entry = self._threads.pop(key, None)
            try:
                loop.call_soon_threadsafe(_resolve, result, value, error)
                if entry is not None and entry.on_end is not None:
                    loop.call_soon_threadsafe(entry.on_end)
            except RuntimeError:  # the loop closed while this thread ran on
                log.debug("thread %s ended after the bot stopped", name)

        with self._lock:
            self._threads[key] = _Thread(name)
        thread = threading.Thread(target=target, name=name, daemon=True)
        try:
            thread.start()
        except RuntimeError:
            with self._lock:
                self._threads.pop(key, None)
            raise
        return await result

    def hold(self, key: object, on_end: Callable[[], None]) -> bool:
        """If the thread of task `key` still runs, call `on_end` (on the loop) once it ends
        and return True; False when it has ended already (or never was)."""
        with self._lock:
            entry = self._threads.get(key)
            if entry is None:
                return False
            entry.on_end = on_end
        log.warning(
            "%s: the bot stopped waiting, the thread runs on until its handler returns "
            "(it keeps its slot meanwhile)",
            entry.name,
        )
        return True


def _resolve(result: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if result.done():  # the awaiting task was cancelled
        return
    if error is not None:
        result.set_exception(error)
    else:
        result.set_result(value)
