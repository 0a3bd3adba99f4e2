"""Fixtures: a coordinator app with a FakeClock and its test client, on each store backend.

`api` runs on SQLite (a file in tmp_path) and on PostgreSQL (a fresh schema of the
server in BOTFLEET_TEST_PG_DSN, dropped afterwards). PostgreSQL is skipped, with the
reason, when unreachable, and fails instead when BOTFLEET_REQUIRE_POSTGRES=1 (CI).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from botfleet.clock import FakeClock
from coordinator.app import create_app
from coordinator.store.base import Store
from tests.integration.harness import Api, server_config, sqlite_store

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Store]:
    """An unopened store; the app opens and closes it."""
    if request.param == "sqlite":
        yield sqlite_store(tmp_path, clock)
        return
    import asyncpg

    from coordinator.store.postgres import PostgresStore

    dsn = os.environ.get("BOTFLEET_TEST_PG_DSN", DEFAULT_PG_DSN)
    try:
        connection = await asyncpg.connect(dsn, timeout=5)
    except Exception as error:  # unreachable, refused, no such database: say which
        if os.environ.get("BOTFLEET_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"BOTFLEET_REQUIRE_POSTGRES=1 but PostgreSQL at {dsn}: {error!r}")
        pytest.skip(f"PostgreSQL at {dsn} is not available ({error!r})")
    schema = "botfleet_http_" + secrets.token_hex(6)
    try:
        yield PostgresStore(dsn, clock, lambda attempt: 0.0, schema=schema)
    finally:
        await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await connection.close()


@pytest.fixture
async def api(tmp_path: Path, clock: FakeClock, store: Store, aiohttp_client: ClientFactory) -> Api:
    client = await aiohttp_client(create_app(server_config(tmp_path), store, clock))
    return Api(client, clock)
