"""Store backends: SQLite (default, embedded) and PostgreSQL (scale-out)."""

from coordinator.store.base import Store, StoreError

__all__ = ["Store", "StoreError"]
