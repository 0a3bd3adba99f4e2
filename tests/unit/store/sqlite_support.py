"""Helpers of the SQLite-only tests: seeing which thread ran a verb."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from coordinator.store.sqlite.connection import Checkpointer
from coordinator.store.sqlite.tx import Tx

DEADLINE_S = 60.0
ROWS_PER_CHECKPOINT = 400
NO_TIME_BOUND_S = 3600.0


class Seen:
    """Which thread ran each call of a wrapped verb, and a setting of the connection
    it ran on at that moment."""

    def __init__(self, pragma: str = "busy_timeout") -> None:
        self.pragma = pragma
        self.calls: list[tuple[int, int]] = []
        self._called = threading.Condition()

    def wrap(self, monkeypatch: pytest.MonkeyPatch, module: ModuleType, name: str) -> None:
        original: Callable[..., Any] = getattr(module, name)

        def spy(tx: Tx, *args: Any) -> Any:
            (setting,) = tx.conn.execute(f"PRAGMA {self.pragma}").fetchone()
            with self._called:
                self.calls.append((threading.get_ident(), setting))
                self._called.notify_all()
            return original(tx, *args)

        monkeypatch.setattr(module, name, spy)

    @property
    def threads(self) -> list[int]:
        return [thread for thread, _ in self.calls]

    async def until_called(self, times: int) -> None:
        """Until the verb was called `times` times (maybe on a thread that then waits)."""

        def wait() -> bool:
            with self._called:
                return self._called.wait_for(lambda: len(self.calls) >= times, DEADLINE_S)

        assert await asyncio.to_thread(wait), f"{len(self.calls)} calls, not {times}"


async def until_checkpointed(checkpointer: Checkpointer, condition: Callable[[], bool]) -> None:
    """Until `condition` holds, re-checked as each checkpoint round ends and as the time
    bound fires."""
    async with asyncio.timeout(DEADLINE_S):
        while not condition():
            await checkpointer.changed()
