"""Creating and migrating the PostgreSQL schema, from several coordinators at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from botfleet.clock import FakeClock
from coordinator.store.migrations import load_migrations
from coordinator.store.postgres import PostgresStore
from tests.unit.store.postgres_support import new_jobs

pytestmark = pytest.mark.postgres


async def test_migrations_are_idempotent(
    make_store: Callable[..., Awaitable[PostgresStore]], pg_dsn: str, schema: str
) -> None:
    store = await make_store()
    await store.close()
    await store.open()  # migrates again: nothing to do
    await store.ping()
    again = await make_store()
    await again.ping()

    assert await _versions(pg_dsn, schema) == _known_versions()


async def test_stores_opening_at_once_migrate_once(
    make_store: Callable[..., Awaitable[PostgresStore]], pg_dsn: str, schema: str
) -> None:
    stores = await asyncio.gather(*[make_store() for _ in range(4)])

    for store in stores:
        await store.ping()
    assert await _versions(pg_dsn, schema) == _known_versions()


async def _versions(dsn: str, schema: str) -> list[Any]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(f"SELECT version FROM {schema}.schema_version ORDER BY 1")
    finally:
        await connection.close()
    return [row["version"] for row in rows]


def _known_versions() -> list[int]:
    return [migration.version for migration in load_migrations("postgres_migrations")]


def test_a_schema_name_that_is_not_a_plain_identifier_is_refused(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="schema"):
        PostgresStore("postgresql://unused", clock, lambda attempt: 1.0, schema="x; DROP")


async def test_a_user_who_owns_only_its_schema_can_open_the_store(
    pg_dsn: str, schema: str, clock: FakeClock
) -> None:
    role = f"{schema}_owner"
    admin = await asyncpg.connect(pg_dsn)
    try:
        # A password too, so the test works where the server wants one (not only trust).
        await admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{role}'")
        await admin.execute(f"CREATE SCHEMA {schema} AUTHORIZATION {role}")
        parts = urlsplit(pg_dsn)
        netloc = f"{role}:{role}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        store = PostgresStore(
            urlunsplit(parts._replace(netloc=netloc)), clock, lambda attempt: 1.0, schema=schema
        )
        try:
            await store.open()
            (outcome,) = await store.submit_jobs(new_jobs(clock, 1))
            assert outcome.created
            found = await store.get_job(outcome.job.id)
            assert found is not None and found.state == "queued"
        finally:
            await store.close()
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.execute(f"DROP ROLE IF EXISTS {role}")
        await admin.close()
