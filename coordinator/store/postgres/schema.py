"""Creating and migrating the PostgreSQL store's schema.

The migrations are `sql/postgres_migrations/NNNN_title.sql` (loaded by the shared
`migrations` module) and the versions applied are rows of `schema_version` in the
store's schema. `migrate` runs in one transaction under an advisory lock keyed by the
schema, so coordinators starting together apply each migration exactly once; DDL is
transactional in PostgreSQL, so a failed migration leaves nothing behind.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from coordinator.store.migrations import load_migrations, pending_migrations

MIGRATIONS_FOLDER = "postgres_migrations"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")


def validate_schema(schema: str) -> str:
    """A plain lower-case identifier: safe unquoted in SQL, in search_path, in a channel."""
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(
            f"schema: {schema!r} is not a lower-case identifier of at most 48 characters"
        )
    return schema


async def migrate(
    connection: Any, schema: str, queries: Mapping[str, str], now: datetime
) -> list[int]:
    """Create the schema if missing and apply pending migrations; returns those applied.

    `connection` is an asyncpg connection outside any transaction.
    """
    schema = validate_schema(schema)
    migrations = load_migrations(MIGRATIONS_FOLDER)
    applied_now: list[int] = []
    async with connection.transaction():
        # Held until commit; concurrent CREATE SCHEMA IF NOT EXISTS is not safe without it.
        await connection.execute(queries["lock_migrations"], f"botfleet.migrate.{schema}")
        # CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege on the database even
        # when the schema is there: a user who owns only its schema could not start.
        if not await connection.fetchval(queries["schema_exists"], schema):
            await connection.execute(f"CREATE SCHEMA {schema}")
        await connection.execute(f"SET LOCAL search_path TO {schema}")
        await connection.execute(queries["create_schema_version"])
        applied = [row["version"] for row in await connection.fetch(queries["applied_versions"])]
        for migration in pending_migrations(migrations, applied):
            await connection.execute(migration.sql)
            await connection.execute(
                queries["record_version"], migration.version, migration.name, now
            )
            applied_now.append(migration.version)
    return applied_now
