"""One PostgreSQL store transaction: its connection, its moment, and what it changed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, overload

from coordinator.store.base import RetryDelay
from coordinator.store.postgres.notify import encode_notices
from coordinator.store.rules import JobSnapshot


@dataclass(slots=True)
class Changes:
    """What a transaction did that waiters in every coordinator must hear about."""

    ops: list[str] = field(default_factory=list)  # operations with jobs claimable again
    done: list[str] = field(default_factory=list)  # jobs now terminal
    notified: bool = False  # the work sent the notices itself (in its last statement)
    # Each entry of `ops` is one claimable job (False: some entry is not, e.g. a new
    # assignment, so waiters cannot be told how many jobs there are).
    counted: bool = True

    @property
    def count(self) -> int | None:
        """How many jobs became claimable, when known."""
        return len(self.ops) if self.counted else None

    def moved(self, rows: Sequence[Any]) -> None:
        """Jobs released or expired: queued again (claimable) or failed (finished)."""
        for row in rows:
            if row["state"] == "queued":
                self.ops.append(row["op"])
            else:
                self.done.append(row["id"])

    def __bool__(self) -> bool:
        return bool(self.ops or self.done)


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


def snapshot(row: Any) -> JobSnapshot:
    """The report rules' view of a job row."""
    return JobSnapshot(
        state=row["state"],
        attempt=row["attempt"],
        bot_id=row["bot_id"],
        attempt_base=row["attempt_base"],
        max_attempts=row["max_attempts"],
        result_attempt=row["result_attempt"],
    )


@overload
def clean_text(value: str) -> str: ...
@overload
def clean_text(value: None) -> None: ...
def clean_text(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL; a client's text may (an exception's message)."""
    if value is None or "\x00" not in value:
        return value
    return value.replace("\x00", "\ufffd")
