"""One PostgreSQL store transaction: its connection, its moment, and what it changed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from coordinator.store.base import RetryDelay
from coordinator.store.changes import Changes
from coordinator.store.postgres.notify import encode_notices


@dataclass(slots=True)
class Tx:
    """A verb's transaction: named statements on one connection, at one moment `now`."""

    conn: Any  # an asyncpg connection inside a transaction
    queries: Mapping[str, str]
    now: datetime  # from the store's clock, taken when the transaction began
    retry_delay: RetryDelay
    origin: str  # this store, as named in its notices
    channel: str
    changes: Changes = field(default_factory=Changes)

    async def fetch(self, name: str, *args: Any) -> list[Any]:
        rows: list[Any] = await self.conn.fetch(self.queries[name], *args)
        return rows

    async def fetchrow(self, name: str, *args: Any) -> Any:
        return await self.conn.fetchrow(self.queries[name], *args)

    async def fetchval(self, name: str, *args: Any) -> Any:
        return await self.conn.fetchval(self.queries[name], *args)

    async def execute(self, name: str, *args: Any) -> None:
        await self.conn.execute(self.queries[name], *args)

    def notices(self) -> list[str]:
        """The NOTIFY payloads for this transaction's changes."""
        return encode_notices(self.origin, self.changes.ops, self.changes.done, self.changes.count)
