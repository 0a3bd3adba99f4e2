"""Versioned schema migrations: `sql/<backend>_migrations/NNNN_name.sql`, applied in order.

Each backend keeps its own folder (`sqlite_migrations/`, `postgres_migrations/`) and a
`schema_version` table listing the versions applied. `load_migrations` and
`pending_migrations` are backend-neutral; `apply_sqlite_migrations` applies them to a
SQLite connection, each version in its own transaction together with its
`schema_version` row, so a crash mid-way leaves the schema at a whole version.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources

from coordinator.store.queries import SQL_FOLDER, SQL_PACKAGE, Queries

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(folder: str) -> list[Migration]:
    """Every migration in `coordinator/store/sql/<folder>`, by version; gaps are an error."""
    directory = resources.files(SQL_PACKAGE) / SQL_FOLDER / folder
    found: list[Migration] = []
    for entry in directory.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None:
            continue
        found.append(
            Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8"))
        )
    found.sort(key=lambda migration: migration.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise ValueError(f"{folder}: migration {expected:04d} is missing")
    return found


def pending_migrations(migrations: Sequence[Migration], applied: Iterable[int]) -> list[Migration]:
    """The migrations not yet applied; a database newer than this code is an error."""
    done = set(applied)
    known = {migration.version for migration in migrations}
    unknown = sorted(done - known)
    if unknown:
        raise ValueError(
            f"the database has schema version {unknown[-1]}, newer than this botfleet "
            f"knows ({max(known, default=0)}); upgrade botfleet"
        )
    return [migration for migration in migrations if migration.version not in done]


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
