"""What a committed transaction changed, and telling a `StoreListener` about it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from coordinator.store.base import StoreListener
from coordinator.store.limits import OP_PREFIX, key_names

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
    # Jobs that left `running` by a release (lease expiry, revocation, lost claim,
    # deregistration), as (op, limit_key): those under a limit free a place. Settled
    # before commit by the backend's `limits.wake_for_freed`, which can tell.
    left_running: list[tuple[str, str | None]] = field(default_factory=list)
    # Named limits with room again: claims waiting for any operation with jobs under one
    # must look again (the backend finds those operations before commit).
    freed_limits: set[str] = field(default_factory=set)

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

    def released(self, rows: Sequence[Any]) -> None:
        """Running jobs taken back, as rows of (id, op, state, limit_key): `moved`, and
        each may free a place under its limits."""
        self.moved(rows)
        self.left_running.extend((row["op"], row["limit_key"]) for row in rows)

    def freed(self, op: str, limit_key: str | None) -> None:
        """A job of `op` under limits (named in `limit_key`, or op:`op`) stopped running:
        claims waiting for `op` look again, however many (the place is not a job), and
        so do those for the other operations under its named limits."""
        self.ops.append(op)
        self.counted = False
        self.freed_limits.update(key_names(limit_key))

    def limit_changed(self, name: str) -> None:
        """A limit was set or removed: it may have room now."""
        if name.startswith(OP_PREFIX):
            self.freed(name.removeprefix(OP_PREFIX), None)
        else:
            self.freed_limits.add(name)

    @property
    def places_to_settle(self) -> bool:
        """Whether `limits.wake_for_freed` has work before commit."""
        return bool(self.left_running or self.freed_limits)

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
