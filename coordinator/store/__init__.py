"""Store backends: SQLite (default, embedded) and PostgreSQL (scale-out)."""

from __future__ import annotations

from pathlib import Path

from botfleet.clock import Clock
from coordinator.store.base import RetryDelay, Store, StoreError

__all__ = ["Store", "StoreError", "open_store"]


def open_store(url: str, clock: Clock, retry_delay: RetryDelay) -> Store:
    """Build (not yet open) the store a `--db` URL names.

    `sqlite:///relative.db`, `sqlite:////abs/path.db`, or a plain path mean SQLite;
    `postgresql://…` / `postgres://…` mean PostgreSQL.
    """
    if url.startswith(("postgresql://", "postgres://")):
        from coordinator.store.postgres import PostgresStore

        return PostgresStore(url, clock, retry_delay)
    if url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://")
        path = path[1:] if path.startswith("/") else path
    elif "://" in url:
        raise ValueError(f"--db: unsupported database URL {url!r} (sqlite:/// or postgresql://)")
    else:
        path = url
    from coordinator.store.sqlite import SQLiteStore

    # A folder made here holds only the database: private, as the state folder is.
    Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return SQLiteStore(path, clock, retry_delay)
