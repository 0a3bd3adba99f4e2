"""Telling waiters what a SQLite commit changed.

SQLite has no channel between processes: only the listener of the process that
committed hears of it, at once, after the commit.
"""

from __future__ import annotations

from coordinator.store.base import StoreListener
from coordinator.store.changes import Changes, tell_listener


def notify(listener: StoreListener | None, changes: Changes) -> None:
    if changes:
        tell_listener(listener, changes.ops, changes.count, changes.done)
