"""Plain (non-async) handlers run in threads of their own, which the bot cannot stop.

Python cannot interrupt a thread. When a thread handler's job is cancelled (by the
coordinator, a timeout or the end of a drain's grace period), the bot stops waiting
and reports the job at once, but the thread runs on until the handler returns. Such
a thread is *abandoned* (`abandon`):

- its job's slot comes back at once, so a handler that never returns cannot hold
  it for ever; the bot counts the abandoned threads still running instead, and
  restarts itself past `ABANDONED_LIMIT` of them (a restart is the only way to get
  rid of them);
- it is never handed another call, even once its handler returns;
- it is a daemon thread, so it never keeps the process from exiting;
- the handler can stop early by checking `job.cancelled()` now and then
  (cooperative cancellation).

A call gets a thread of its own for as long as it runs, never a share of one: a thread
that finished a handler waits a while for the next call (up to `IDLE_KEPT` of them, for
`IDLE_S`), and a call that finds none waiting starts a new one: handing a call to a
waiting thread costs far less than starting one. Not a `ThreadPoolExecutor`: its
threads are joined at exit (a stuck handler would hang the shutdown) and it queues
calls behind busy threads (behind stuck handlers).
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

Work = Callable[[], bool]  # one call; False when its thread must end after it

IDLE_KEPT = 8  # threads waiting for the next call at most; one more ends at once
IDLE_S = 30.0  # a thread waiting this long for a call ends
IDLE_NAME = "handler-idle"
ABANDONED_LIMIT = 8  # abandoned threads still running that a bot lives with; one more: restart


@dataclass(slots=True)
class _Thread:
    name: str
    abandoned: bool = False


class HandlerThreads:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._threads: dict[object, _Thread] = {}
        self._idle: list[_Worker] = []  # threads waiting for a call
        self.abandoned_total = 0  # threads ever abandoned (a counter)

    @property
    def running(self) -> int:
        with self._lock:
            return len(self._threads)

    @property
    def abandoned(self) -> int:
        """Abandoned threads still running: nobody waits for them any more."""
        with self._lock:
            return sum(1 for thread in self._threads.values() if thread.abandoned)

    @property
    def idle(self) -> int:
        """Threads waiting for a call."""
        with self._lock:
            return len(self._idle)

    async def call(self, function: Callable[[Any], Any], argument: Any, name: str) -> Any:
        """`function(argument)` in a daemon thread of its own, named `name`, with this task's
        context variables.

        The key of the thread is the calling task: `abandon(task)` gives it up later.
        """
        loop = asyncio.get_running_loop()
        result: asyncio.Future[Any] = loop.create_future()
        key = asyncio.current_task()
        context = contextvars.copy_context()

        def target() -> bool:
            threading.current_thread().name = name
            try:
                value, error = context.run(function, argument), None
            except BaseException as exc:  # handed to the awaiting task, whatever it is
                value, error = None, exc
            with self._lock:
                entry = self._threads.pop(key, None)
            abandoned = entry is not None and entry.abandoned
            if abandoned:
                log.info("%s: an abandoned handler returned at last; its thread ends", name)
            try:
                loop.call_soon_threadsafe(_resolve, result, value, error)
            except RuntimeError:  # the loop closed while this thread ran on
                log.debug("thread %s ended after the bot stopped", name)
            return not abandoned

        with self._lock:
            self._threads[key] = _Thread(name)
            waiting = self._idle.pop() if self._idle else None
        if waiting is not None:
            waiting.hand(target)
        else:
            try:
                _Worker(self).start(target, name)
            except RuntimeError:
                with self._lock:
                    self._threads.pop(key, None)
                raise
        return await result

    def _park(self, worker: _Worker) -> bool:
        """`worker` finished a call: True when it is to wait for the next one."""
        with self._lock:
            if len(self._idle) >= IDLE_KEPT:
                return False
            self._idle.append(worker)
            return True

    def _retire(self, worker: _Worker) -> bool:
        """`worker` waited `IDLE_S` for nothing: True when it may end (False: a call was
        handed to it meanwhile, and is on its way)."""
        with self._lock:
            if worker in self._idle:
                self._idle.remove(worker)
                return True
            return False

    def abandon(self, key: object) -> bool:
        """Give up the thread of task `key` if it still runs (True): nobody waits for it, and
        it ends once its handler returns. False when it has ended already (or never was)."""
        if key not in self._threads:  # an async handler's job, most of them: no lock to take
            return False
        with self._lock:
            entry = self._threads.get(key)
            if entry is None or entry.abandoned:
                return False
            entry.abandoned = True
            self.abandoned_total += 1
        return True


class _Worker:
    """One daemon thread that runs the calls handed to it, one at a time."""

    def __init__(self, pool: HandlerThreads) -> None:
        self._pool = pool
        self._work: Work | None = None
        self._handed = threading.Lock()  # held while there is no work: `hand` releases it
        self._handed.acquire()

    def start(self, work: Work, name: str) -> None:
        self._work = work
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def hand(self, work: Work) -> None:
        self._work = work
        self._handed.release()

    def _run(self) -> None:
        while True:
            work, self._work = self._work, None
            if work is not None:
                reusable = work()
                del work  # the call's handler, job and result go with it
                if not reusable:
                    return  # abandoned: no later job may meet what its handler left behind
            threading.current_thread().name = IDLE_NAME
            if not self._pool._park(self):
                return
            while not self._handed.acquire(timeout=IDLE_S):
                if self._pool._retire(self):
                    return


def _resolve(result: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if result.done():  # the awaiting task was cancelled
        return
    if error is not None:
        result.set_exception(error)
    else:
        result.set_result(value)
