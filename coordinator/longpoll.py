"""Waiting without polling: a claim held until jobs arrive, a GET held until a job ends.

`Waiters` is the store's listener: the store says "jobs for these operations may be
available" or "this job finished", and every request waiting on that wakes at
once. A notice can be missed (another process without LISTEN/NOTIFY, a race), so
each waiter also looks again about every `recheck_s` (jittered): a missed notice costs
little. A claim's re-check is one read ("is a job due?"); it claims only when one is.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

from botfleet.clock import Clock
from botfleet.protocol.messages import TERMINAL_STATES
from coordinator.store.base import JobRecord, Store

log = logging.getLogger(__name__)

RECHECK_JITTER = 0.2

ClaimObserver = Callable[[float, list[JobRecord]], None]
"""Told the duration (seconds) and the jobs of every claim made in the store."""


class Waiters:
    """Events of waiting requests, by operation and by job id (a `StoreListener`)."""

    def __init__(self) -> None:
        self._by_operation: dict[str, set[asyncio.Event]] = {}
        self._by_job: dict[str, set[asyncio.Event]] = {}
        self._by_bot: dict[str, set[asyncio.Event]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the waiting requests run on (a store may notify from another thread)."""
        self._loop = loop
        self._closed = False

    def close(self) -> None:
        """Shutting down: wake everyone, and let no new wait begin."""
        self._closed = True
        tables = (self._by_operation, self._by_job, self._by_bot)
        for events in (group for table in tables for group in table.values()):
            for event in events:
                event.set()

    # ---- StoreListener
    def jobs_available(self, operations: Sequence[str]) -> None:
        self._notify(self._by_operation, tuple(operations))

    def job_finished(self, job_id: str) -> None:
        self._notify(self._by_job, (job_id,))

    def bot_capacity_changed(self, bot_id: str) -> None:
        """A bot's report, cancellation or new assignment may let its waiting claim go on.

        A bot refills a freed slot at once, so its next claim can reach us before the
        report that freed the slot: the claim then waits at the concurrency cap, and
        must wake when the report lands rather than at the next recheck.
        """
        self._notify(self._by_bot, (bot_id,))

    # ---- waiting
    @contextmanager
    def watch_operations(
        self, operations: Iterable[str], bot_id: str | None = None
    ) -> Iterator[asyncio.Event]:
        with self._watch(self._by_operation, tuple(operations)) as event:
            if bot_id is None:
                yield event
                return
            with self._watch(self._by_bot, (bot_id,), event):
                yield event

    @contextmanager
    def watch_job(self, job_id: str) -> Iterator[asyncio.Event]:
        with self._watch(self._by_job, (job_id,)) as event:
            yield event

    def waiting(self) -> int:
        """How many requests wait (for tests and metrics)."""
        events = set[asyncio.Event]()
        for table in (self._by_operation, self._by_job, self._by_bot):
            for group in table.values():
                events |= group
        return len(events)

    @contextmanager
    def _watch(
        self,
        table: dict[str, set[asyncio.Event]],
        keys: tuple[str, ...],
        event: asyncio.Event | None = None,
    ) -> Iterator[asyncio.Event]:
        event = event or asyncio.Event()
        if self._closed:
            event.set()
        for key in keys:
            table.setdefault(key, set()).add(event)
        try:
            yield event
        finally:
            for key in keys:
                group = table.get(key)
                if group is not None:
                    group.discard(event)
                    if not group:
                        del table[key]

    def _notify(self, table: dict[str, set[asyncio.Event]], keys: tuple[str, ...]) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if self._loop is None or running is self._loop:
            self._wake(table, keys)
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake, table, keys)

    @staticmethod
    def _wake(table: dict[str, set[asyncio.Event]], keys: tuple[str, ...]) -> None:
        for key in keys:
            for event in table.get(key, ()):
                event.set()


class LongPoller:
    """Claims that may wait for work, and job reads that may wait for the end."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        waiters: Waiters,
        recheck_s: float,
        observe_claim: ClaimObserver | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._random = rng or random.Random()
        self._clock = clock
        self._waiters = waiters
        self._recheck_s = recheck_s
        self._observe_claim = observe_claim

    async def claim(
        self,
        bot_id: str,
        operations: Sequence[str],
        limit: int,
        lease_ttl_s: float,
        wait_s: float,
        still_wanted: Callable[[], bool] = lambda: True,
    ) -> list[JobRecord] | None:
        """Jobs claimed (maybe after waiting up to `wait_s`); None for an unknown/offline bot.

        `still_wanted` is asked before each claim after a wait: jobs claimed for a
        client that went away would sit under a lease nobody works on.
        """
        if wait_s <= 0:
            return await self._claim(bot_id, operations, limit, lease_ttl_s)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        # Watch before the first claim, so a job submitted in between is not missed.
        with self._waiters.watch_operations(operations, bot_id) as wake:
            claim_next = True
            while True:
                if claim_next:
                    wake.clear()
                    jobs = await self._claim(bot_id, operations, limit, lease_ttl_s)
                    if jobs is None or jobs:
                        return jobs
                remaining = deadline - loop.time()
                if remaining <= 0 or self._waiters.closed:
                    return []
                due_in = await self._due_in(operations)
                if not claim_next and due_in is not None and due_in <= 0:
                    # A re-check (no notice) found a job due: claim it. Otherwise a
                    # re-check costs one read, not a claim transaction: an idle fleet
                    # of waiting claims must cost almost nothing.
                    claim_next = True
                    continue
                timeout = self._recheck_timeout()
                if due_in is not None and due_in > 0:
                    timeout = min(timeout, due_in)
                claim_next = await _wait(wake, min(remaining, timeout))
                if not still_wanted():
                    return []

    async def job(self, job_id: str, wait_s: float) -> JobRecord | None:
        """The job, once terminal or when `wait_s` has passed; None if unknown."""
        if wait_s <= 0:
            return await self._store.get_job(job_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        with self._waiters.watch_job(job_id) as wake:
            while True:
                wake.clear()
                job = await self._store.get_job(job_id)
                remaining = deadline - loop.time()
                if job is None or job.state in TERMINAL_STATES or remaining <= 0:
                    return job
                if self._waiters.closed:
                    return job
                await _wait(wake, min(remaining, self._recheck_timeout()))

    async def _claim(
        self, bot_id: str, operations: Sequence[str], limit: int, lease_ttl_s: float
    ) -> list[JobRecord] | None:
        started = time.perf_counter()
        jobs = await self._store.claim_jobs(bot_id, operations, limit, lease_ttl_s)
        if jobs is not None and self._observe_claim is not None:
            self._observe_claim(time.perf_counter() - started, jobs)
        return jobs

    async def _due_in(self, operations: Sequence[str]) -> float | None:
        """Seconds until the earliest queued job for these operations is due (<= 0: due
        now); None when none is queued."""
        run_at = await self._store.next_run_at(operations)
        if run_at is None:
            return None
        return (run_at - self._clock.now()).total_seconds()

    def _recheck_timeout(self) -> float:
        """`recheck_s`, jittered by up to a fifth either way, so that a fleet of waiters
        that began together does not re-check in lockstep."""
        return self._recheck_s * self._random.uniform(1 - RECHECK_JITTER, 1 + RECHECK_JITTER)


async def _wait(event: asyncio.Event, timeout_s: float) -> bool:
    """True when the event was set, False when `timeout_s` passed first."""
    try:
        await asyncio.wait_for(event.wait(), timeout_s)
    except TimeoutError:
        return False
    return True
