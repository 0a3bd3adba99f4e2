"""Fixtures the end-to-end tests share."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def _server_dsn() -> str:
    return os.environ.get("BOTFLEET_TEST_PG_DSN", DEFAULT_PG_DSN)


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


@pytest.fixture
async def pg_database() -> AsyncIterator[str]:
    """The DSN of a fresh database, `botfleet_e2e_<random>`, created on the server of
    BOTFLEET_TEST_PG_DSN and dropped after the test (WITH (FORCE), so a killed
    coordinator's leftovers cannot keep it). Without a reachable PostgreSQL the test
    skips, unless BOTFLEET_REQUIRE_POSTGRES=1 (CI), where it fails."""
    server = _server_dsn()
    try:
        admin = await asyncpg.connect(server, timeout=5)
    except (OSError, asyncpg.PostgresError) as error:
        reason = f"PostgreSQL unreachable at {server}: {error}"
        if os.environ.get("BOTFLEET_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    name = f"botfleet_e2e_{secrets.token_hex(6)}"
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    yield _with_database(server, name)
    admin = await asyncpg.connect(server, timeout=10)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()
