"""The SQLite backend: one file, WAL, one writer connection (the default store)."""

from coordinator.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
