"""Versioned schema migrations: `sql/<backend>_migrations/NNNN_name.sql`, applied in order.

Each backend keeps its own folder (`sqlite_migrations/`, `postgres_migrations/`) and a
`schema_version` table listing the versions applied; each backend's `schema` module
applies them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources

from coordinator.store.queries import SQL_FOLDER, SQL_PACKAGE

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
