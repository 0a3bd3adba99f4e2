"""The concurrency limit: how many jobs may run at once, resizable while jobs run."""

from __future__ import annotations

import asyncio


class Slots:
    """Counts running jobs against a capacity the coordinator may change at any time.

    Shrinking below the number in use lets running jobs finish (nothing is
    cancelled); `free` stays 0 until enough of them end. `take` never waits: a job
    already claimed must run even if the limit shrank during the claim.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self._capacity = capacity
        self._in_use = 0
        #: Set whenever a slot frees up or the capacity changes; waiters clear it.
        self.changed = asyncio.Event()

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def in_use(self) -> int:
        return self._in_use

    @property
    def free(self) -> int:
        return max(0, self._capacity - self._in_use)

    def take(self) -> None:
        self._in_use += 1

    def release(self) -> None:
        if self._in_use == 0:
            raise RuntimeError("release() without a matching take()")
        self._in_use -= 1
        self.changed.set()

    def resize(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        if capacity != self._capacity:
            self._capacity = capacity
            self.changed.set()
