"""The PostgreSQL store's connections: the pool, and running work on it with the
database's errors mapped to the store's (transient ones retried)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from coordinator.store.base import StoreError, StoreFull
from coordinator.store.postgres.rows import init_connection

log = logging.getLogger(__name__)

T = TypeVar("T")
Connection = Any  # asyncpg ships no type information

# Transient failures of a transaction that are safe to retry from the start.
_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
_TRANSACTION_TRIES = 5
CONNECT_TIMEOUT_S = 10.0  # an unreachable server fails /readyz in seconds, not a minute


async def create_pool(
    dsn: str, min_size: int, max_size: int, server_settings: dict[str, str]
) -> Any:
    try:
        return await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            server_settings=server_settings,
            init=init_connection,
            timeout=CONNECT_TIMEOUT_S,
            reset=_keep_session,
        )
    except DATABASE_ERRORS as error:
        raise StoreError(f"cannot connect to PostgreSQL: {error}") from error


async def connect(dsn: str, server_settings: dict[str, str]) -> Connection:
    """A connection of its own, outside the pool (the listening one)."""
    return await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S, server_settings=server_settings)


async def run(pool: Any, work: Callable[[Connection], Awaitable[T]], transaction: bool) -> T:
    """`work` on a pooled connection, in a transaction or not. Database errors become
    StoreError; deadlocks and serialization failures run it again from the start."""
    if pool is None:
        raise StoreError("the PostgreSQL store is not open")
    tries = 0
    while True:
        tries += 1
        try:
            async with pool.acquire() as conn:
                if not transaction:
                    return await work(conn)
                async with conn.transaction():
                    return await work(conn)
        except _RETRYABLE as error:
            if tries >= _TRANSACTION_TRIES:
                raise StoreError(f"PostgreSQL: gave up after {tries} tries: {error}") from error
            log.info("retrying a transaction (try %d): %s", tries + 1, error)
        except asyncpg.DiskFullError as error:
            raise StoreFull(f"PostgreSQL: {error}") from error
        except DATABASE_ERRORS as error:
            raise StoreError(f"PostgreSQL: {error}") from error


async def _keep_session(_connection: Connection) -> None:
    """Skip asyncpg's reset query (a round trip per verb) when a connection goes back.

    The store leaves no session state behind: settings are `SET LOCAL`, advisory locks
    are transaction-scoped, LISTEN lives on its own connection, and asyncpg still rolls
    back a transaction left open.
    """
