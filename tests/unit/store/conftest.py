"""The store fixtures, parametrized over every backend (`tests/support/backends.py`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from botfleet.clock import FakeClock
from coordinator.store.base import RetryDelay, Store
from coordinator.store.postgres import PostgresStore
from coordinator.store.sqlite import SQLiteStore
from tests.support.backends import BACKENDS, StoreFactory, backend_stores, reachable_pg_dsn
from tests.unit.store.sqlite_support import NO_TIME_BOUND_S as SQLITE_NO_TIME_BOUND_S
from tests.unit.store.sqlite_support import ROWS_PER_CHECKPOINT as SQLITE_ROWS_PER_CHECKPOINT
from tests.unit.store.support import RecordingListener, retry_delay_for_tests


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
    async with backend_stores(request.param, tmp_path, clock, retry_delay) as factory:
        yield factory


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


# ---------------------------------------------------------------- SQLite only


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "botfleet.db"


@pytest.fixture
async def sqlite_store(db_path: Path, clock: FakeClock) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(
        str(db_path),
        clock,
        retry_delay_for_tests,
        SQLITE_ROWS_PER_CHECKPOINT,
        SQLITE_NO_TIME_BOUND_S,
    )
    await store.open()
    try:
        yield store
    finally:
        await store.close()


# ---------------------------------------------------------------- PostgreSQL only


@pytest.fixture
async def pg_dsn() -> str:
    return await reachable_pg_dsn()


@pytest.fixture
async def schema(pg_dsn: str) -> AsyncIterator[str]:
    name = f"botfleet_t_{uuid.uuid4().hex[:12]}"
    yield name
    connection = await asyncpg.connect(pg_dsn)
    try:
        await connection.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    finally:
        await connection.close()


@pytest.fixture
async def make_store(
    pg_dsn: str, schema: str, clock: FakeClock
) -> AsyncIterator[Callable[..., Awaitable[PostgresStore]]]:
    """Open stores on the test's schema (as several coordinators would); all closed at the end."""
    stores: list[PostgresStore] = []

    async def make(listener: RecordingListener | None = None) -> PostgresStore:
        store = PostgresStore(pg_dsn, clock, lambda attempt: 1.0, schema=schema, pool_max=5)
        stores.append(store)
        if listener is not None:
            store.set_listener(listener)
        await store.open()
        return store

    yield make
    for store in stores:
        await store.close()
