"""What a committed transaction changed, and telling a `StoreListener` about it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from coordinator.store.base import StoreListener

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Changes:
    """What a transaction did that waiting claims and job waits must hear about."""

    ops: list[str] = field(default_factory=list)  # one entry per job claimable again
    done: list[str] = field(default_factory=list)  # jobs now terminal
    # False: some entry of `ops` is not one claimable job (a new assignment), so
    # waiters cannot be told how many jobs there are.
    counted: bool = True
    notified: bool = False  # the transaction sent its own notices (PostgreSQL)

    @property
    def count(self) -> int | None:
        """How many jobs became claimable, when known."""
        return len(self.ops) if self.counted else None

    def moved(self, rows: Sequence[Any]) -> None:
        """Jobs released or expired, as rows of (id, op, state): queued again
        (claimable) or failed (finished)."""
        for row in rows:
            if row["state"] == "queued":
                self.ops.append(row["op"])
            else:
                self.done.append(row["id"])

    def __bool__(self) -> bool:
        return bool(self.ops or self.done)


def tell_listener(
    listener: StoreListener | None, ops: Sequence[str], count: int | None, done: Sequence[str]
) -> None:
    """Tell `listener` of committed changes; a listener that fails is logged, since the
    change stands and a waiter still re-checks on its own."""
    if listener is None:
        return
    try:
        if ops:
            listener.jobs_available(tuple(dict.fromkeys(ops)), count)
        if done:
            listener.jobs_finished(tuple(done))
    except Exception:
        logger.exception("store listener failed")
