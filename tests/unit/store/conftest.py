"""The store fixture, parametrized over every backend (as Dramatiq's broker fixture is).

`sqlite` runs on a file in tmp_path. `postgres` runs `PostgresStore` in a fresh schema
of the server in BOTFLEET_TEST_PG_DSN, dropped after the test; it is skipped, with the
reason, when the backend module or the server is missing, and fails instead when
BOTFLEET_REQUIRE_POSTGRES=1 (CI).
"""

from __future__ import annotations

import importlib
import os
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from botfleet.clock import FakeClock
from coordinator.store.base import RetryDelay, Store
from tests.unit.store.support import RecordingListener, retry_delay_for_tests

DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ["sqlite", "postgres"]

StoreFactory = Callable[[], Store]


def _pg_dsn() -> str:
    return os.environ.get("BOTFLEET_TEST_PG_DSN", DEFAULT_PG_DSN)


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


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def retry_delay() -> RetryDelay:
    return retry_delay_for_tests


@pytest.fixture(params=BACKENDS)
async def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock, retry_delay: RetryDelay
) -> AsyncIterator[StoreFactory]:
    """Makes (unopened) stores on one database: several make a restart or a second
    coordinator process."""
    if request.param == "sqlite":
        from coordinator.store.sqlite import SQLiteStore

        path = str(tmp_path / "botfleet.db")
        yield lambda: SQLiteStore(path, clock, retry_delay)
        return
    try:
        postgres = importlib.import_module("coordinator.store.postgres")
    except ModuleNotFoundError as error:
        _unavailable(f"coordinator.store.postgres is not there yet ({error})")
    dsn = _pg_dsn()
    try:
        await _pg_execute(dsn, "SELECT 1")
    except (OSError, TimeoutError) as error:
        _unavailable(f"PostgreSQL at {dsn} is unreachable ({error!r})")
    except Exception as error:  # asyncpg's own errors: auth, missing database
        _unavailable(f"PostgreSQL at {dsn} refused the test connection ({error!r})")
    schema = "botfleet_test_" + secrets.token_hex(6)
    yield lambda: postgres.PostgresStore(dsn, clock, retry_delay, schema=schema)
    await _pg_execute(dsn, f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
async def store(store_factory: StoreFactory) -> AsyncIterator[Store]:
    opened = store_factory()
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def listener(store: Store) -> RecordingListener:
    """Set inside the event loop: a backend may start listening tasks at once."""
    recording = RecordingListener()
    store.set_listener(recording)
    return recording
