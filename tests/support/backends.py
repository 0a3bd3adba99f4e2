"""One store per backend for the test suites (as Dramatiq's broker fixture is).

`sqlite` runs on a file in tmp_path. `postgres` runs `PostgresStore` in a fresh schema
of the server in BOTFLEET_TEST_PG_DSN, dropped after the test; it is skipped, with the
reason, when the server is missing, and fails instead when BOTFLEET_REQUIRE_POSTGRES=1
(CI).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from botfleet.clock import FakeClock
from coordinator.store.base import RetryDelay, Store

DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]

StoreFactory = Callable[[], Store]


async def reachable_pg_dsn() -> str:
    """The test server's DSN once it answers; skips (or fails, in CI) otherwise."""
    dsn = os.environ.get("BOTFLEET_TEST_PG_DSN", DEFAULT_PG_DSN)
    try:
        await _pg_execute(dsn, "SELECT 1")
    except (OSError, TimeoutError) as error:
        _unavailable(f"PostgreSQL at {dsn} is unreachable ({error!r})")
    except Exception as error:  # asyncpg's own errors: auth, missing database
        _unavailable(f"PostgreSQL at {dsn} refused the test connection ({error!r})")
    return dsn


def _unavailable(reason: str) -> None:
    if os.environ.get("BOTFLEET_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"BOTFLEET_REQUIRE_POSTGRES=1 but {reason}")
    pytest.skip(reason)


async def _pg_execute(dsn: str, statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(dsn, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@asynccontextmanager
async def backend_stores(
    backend: str, tmp_path: Path, clock: FakeClock, retry_delay: RetryDelay
) -> AsyncIterator[StoreFactory]:
    """Makes (unopened) stores on one database of `backend`: several make a restart or a
    second coordinator process."""
    if backend == "sqlite":
        from coordinator.store.sqlite import SQLiteStore

        path = str(tmp_path / "botfleet.db")
        yield lambda: SQLiteStore(path, clock, retry_delay)
        return
    from coordinator.store.postgres import PostgresStore

    dsn = await reachable_pg_dsn()
    schema = "botfleet_test_" + secrets.token_hex(6)
    try:
        yield lambda: PostgresStore(dsn, clock, retry_delay, schema=schema)
    finally:
        await _pg_execute(dsn, f"DROP SCHEMA IF EXISTS {schema} CASCADE")
