"""Helpers of the SQLite-only tests: seeing which thread ran a verb."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

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

    def wrap(self, monkeypatch: pytest.MonkeyPatch, module: ModuleType, name: str) -> None:
        original: Callable[..., Any] = getattr(module, name)

        def spy(tx: Tx, *args: Any) -> Any:
            (setting,) = tx.conn.execute(f"PRAGMA {self.pragma}").fetchone()
            self.calls.append((threading.get_ident(), setting))
            return original(tx, *args)

        monkeypatch.setattr(module, name, spy)

    @property
    def threads(self) -> list[int]:
        return [thread for thread, _ in self.calls]
