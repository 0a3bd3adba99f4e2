"""Creating and migrating the SQLite store's schema.

The migrations are `sql/sqlite_migrations/NNNN_title.sql` (loaded by the shared
`migrations` module); each version is applied in its own transaction together with its
`schema_version` row, so a crash mid-way leaves the schema at a whole version.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence

from botfleet.clock import Clock
from coordinator.store.base import StoreError
from coordinator.store.migrations import Migration, load_migrations, pending_migrations
from coordinator.store.queries import Queries, load_queries
from coordinator.store.sqlite.connection import READER_SETUP, WRITER_SETUP, DatabaseThread
from coordinator.store.sqlite.rows import to_us

logger = logging.getLogger(__name__)

QUERIES_FILE = "sqlite_queries.sql"
MIGRATIONS_FOLDER = "sqlite_migrations"


def split_statements(script: str) -> list[str]:
    """Cut a SQLite script into complete statements (trigger bodies stay whole)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not all(
        part.strip().startswith("--") for part in buffer.strip().splitlines() if part.strip()
    ):
        raise ValueError(f"incomplete SQL statement at the end of a migration: {buffer!r}")
    return statements


def apply_sqlite_migrations(
    conn: sqlite3.Connection, queries: Queries, migrations: Sequence[Migration], now_us: int
) -> list[int]:
    """Apply what is pending; return the versions applied now.

    `BEGIN IMMEDIATE` takes the write lock before reading `schema_version`, so two
    processes opening one file at once apply each version once.
    """
    conn.execute(queries["create_schema_version"])
    applied_now: list[int] = []
    while True:
        conn.execute(queries["begin_write"])
        try:
            applied = [row[0] for row in conn.execute(queries["applied_versions"])]
            todo = pending_migrations(migrations, applied)
            if not todo:
                conn.execute(queries["commit"])
                return applied_now
            migration = todo[0]
            for statement in split_statements(migration.sql):
                conn.execute(statement)
            conn.execute(
                queries["record_version"],
                {"version": migration.version, "name": migration.name, "applied_at": now_us},
            )
            conn.execute(queries["commit"])
        except BaseException:
            conn.execute(queries["rollback"])
            raise
        applied_now.append(migration.version)


async def open_connections(
    path: str, clock: Clock
) -> tuple[Queries, DatabaseThread, DatabaseThread]:
    """The writer thread, its connection migrated to the current schema, and the reader
    thread; StoreError when the file cannot be opened or is newer than this code."""
    queries = load_queries(QUERIES_FILE)
    migrations = load_migrations(MIGRATIONS_FOLDER)
    writer = DatabaseThread("sqlite-writer")
    reader = DatabaseThread("sqlite-reader")
    try:
        await writer.call(_open_writer, writer, path, queries, migrations, to_us(clock.now()))
        await reader.call(reader.connect, path, queries, READER_SETUP)
    except BaseException as exc:
        await reader.call(reader.disconnect, queries, ())
        await writer.call(writer.disconnect, queries, ())
        writer.shutdown()
        reader.shutdown()
        # ValueError: the file has a schema newer than this code.
        if isinstance(exc, sqlite3.Error | ValueError):
            raise StoreError(f"SQLite {path}: {exc}") from exc
        raise
    return queries, writer, reader


def _open_writer(
    writer: DatabaseThread,
    path: str,
    queries: Queries,
    migrations: Sequence[Migration],
    now_us: int,
) -> None:
    # check_same_thread=False: the event loop runs short writes on this connection
    # too, never while the writer thread has a call in flight (see `tx`).
    writer.connect(path, queries, WRITER_SETUP, check_same_thread=False)
    mode = writer.conn.execute(queries["pragma_journal_wal"]).fetchone()
    if mode is None or str(mode[0]).lower() != "wal":
        logger.warning("SQLite %s: WAL is not available (journal mode %s)", path, mode)
    applied = apply_sqlite_migrations(writer.conn, queries, migrations, now_us)
    if applied:
        logger.info("SQLite %s: applied schema versions %s", path, applied)
    # From now on the connection waits for a lock only on the writer thread's own turns.
    writer.conn.execute(queries["pragma_busy_no_wait"])
