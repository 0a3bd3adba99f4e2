"""Named side tasks under one supervisor: started by name, watched, stopped in order.

A task that ends with an exception is logged with its traceback and reported
through `failed` (the bot then stops safely); a task is never silently lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class Supervisor:
    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}
        #: Set when a task died of an exception; `failure` says which and why.
        self.failed = asyncio.Event()
        self.failure: tuple[str, BaseException] | None = None

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def names(self) -> list[str]:
        return [name for name, task in self._tasks.items() if not task.done()]

    def start(self, name: str, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        if name in self._tasks and not self._tasks[name].done():
            work.close()
            raise RuntimeError(f"task {name!r} already runs")
        task = asyncio.create_task(work, name=name)
        self._tasks[name] = task
        task.add_done_callback(self._ended)
        log.debug("task %s started", name)
        return task

    def _ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            log.debug("task %s cancelled", task.get_name())
            return
        error = task.exception()
        if error is None:
            log.debug("task %s ended", task.get_name())
            return
        log.error("task %s crashed: %r", task.get_name(), error, exc_info=error)
        if self.failure is None:
            self.failure = (task.get_name(), error)
        self.failed.set()

    async def join(self, name: str, hard: asyncio.Event | None = None) -> bool:
        """Wait for task `name` to end by itself; False when `hard` is set first."""
        task = self._tasks.get(name)
        if task is None or task.done():
            return True
        waiters: set[asyncio.Future[Any]] = {task}
        hard_wait = asyncio.ensure_future(hard.wait()) if hard is not None else None
        if hard_wait is not None:
            waiters.add(hard_wait)
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if hard_wait is not None:
                hard_wait.cancel()
                await asyncio.gather(hard_wait, return_exceptions=True)
        return task.done()

    async def cancel(self, name: str) -> None:
        task = self._tasks.get(name)
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def cancel_all(self) -> None:
        for name in reversed(list(self._tasks)):
            await self.cancel(name)
