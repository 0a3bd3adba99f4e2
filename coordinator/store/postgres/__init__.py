"""The PostgreSQL backend: several coordinators share one database (asyncpg)."""

from coordinator.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
