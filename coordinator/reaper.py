"""The reaper: expires bot and job leases every few seconds, sweeps what is past its
retention, and never dies of one failure.

It is safe in every coordinator process at once (the store makes `expire_leases`
one transaction), so there is no leader to elect.

After a start it first waits out a grace period (one bot lease by default): while
the coordinator was down no bot could heartbeat, so every lease looks expired;
expiring them at once would requeue work that is still running and turn the
reports waiting in the bots' outboxes into conflicts.

After the leases, each pass sweeps (`Store.sweep`) batch after batch while a batch
comes back full: every batch is its own short transaction, so a large backlog never
holds the database's write lock for long. Sweeps also run during the grace: what is
past its retention or its expiry does not depend on heartbeats.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from botfleet.clock import Clock, SystemClock
from coordinator.store.base import ExpiryOutcome, Retention, Store, SweepOutcome

log = logging.getLogger(__name__)

Observer = Callable[[ExpiryOutcome], None]
SweepObserver = Callable[[SweepOutcome], None]
Pause = Callable[[asyncio.Event], Awaitable[None]]
"""Waits out the interval between two passes, or less once `stop` is set."""


class Reaper:
    def __init__(
        self,
        store: Store,
        interval_s: float,
        observe: Observer | None = None,
        clock: Clock | None = None,
        startup_grace_s: float = 0.0,
        pause: Pause | None = None,
        retention: Retention | None = None,
        observe_sweep: SweepObserver | None = None,
    ) -> None:
        self._store = store
        self._interval_s = interval_s
        self._observe = observe
        self._clock = clock or SystemClock()
        self._startup_grace = timedelta(seconds=startup_grace_s)
        self._pause = pause or self._wait_interval
        self._retention = retention
        self._observe_sweep = observe_sweep
        self.runs = 0
        self.failures = 0

    async def run_once(self) -> ExpiryOutcome | None:
        """One pass; a failure is logged and counted, and None returned."""
        self.runs += 1
        try:
            outcome = await self._store.expire_leases()
        except asyncio.CancelledError:
            raise
        except Exception:
            self.failures += 1
            log.exception("reaper: expiring leases failed; trying again in %ss", self._interval_s)
            return None
        if outcome.bots_offline or outcome.requeued or outcome.failed:
            log.info(
                "reaper: %d bot(s) offline %s, %d job(s) requeued %s, %d failed %s",
                len(outcome.bots_offline),
                _sample(outcome.bots_offline),
                len(outcome.requeued),
                _sample(outcome.requeued),
                len(outcome.failed),
                _sample(outcome.failed),
            )
        if self._observe is not None:
            self._observe(outcome)
        await self.sweep()
        return outcome

    async def sweep(self) -> SweepOutcome:
        """Batches of housekeeping until one comes back short; the totals. A failure is
        logged and counted, and ends this pass's sweep."""
        total = SweepOutcome()
        if self._retention is None:
            return total
        more = True
        while more:
            try:
                batch = await self._store.sweep(self._retention)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.failures += 1
                log.exception("reaper: sweeping failed; trying again in %ss", self._interval_s)
                break
            if self._observe_sweep is not None:
                self._observe_sweep(batch)
            total = SweepOutcome(
                expired=total.expired + batch.expired,
                jobs_deleted=total.jobs_deleted + batch.jobs_deleted,
                bots_forgotten=total.bots_forgotten + batch.bots_forgotten,
            )
            more = batch.more
        if total:
            log.info("reaper: %s", _swept(total))
        return total

    async def run(self, stop: asyncio.Event) -> None:
        """Pass after pass until `stop` is set. The interval is real time (unless `pause`
        says otherwise), not the clock's: the clock decides which leases are over, the
        interval only how often to look."""
        grace_until = self._clock.now() + self._startup_grace
        if self._startup_grace:
            log.info("reaper: first pass after a grace of %ss", self._startup_grace.seconds)
        while not stop.is_set() and self._clock.now() < grace_until:
            await self.sweep()  # retention and expiry owe nothing to the bots' heartbeats
            await self._pause(stop)
        while not stop.is_set():
            await self.run_once()
            await self._pause(stop)

    async def _wait_interval(self, stop: asyncio.Event) -> None:
        try:
            await asyncio.wait_for(stop.wait(), self._interval_s)
        except TimeoutError:
            return


def _sample(ids: tuple[str, ...], limit: int = 5) -> str:
    shown = ", ".join(ids[:limit])
    return f"[{shown}{', …' if len(ids) > limit else ''}]"


def _swept(outcome: SweepOutcome) -> str:
    """What a sweep did, naming only the kinds it touched."""
    parts = []
    if outcome.expired:
        parts.append(f"{len(outcome.expired)} queued job(s) expired {_sample(outcome.expired)}")
    if outcome.jobs_deleted:
        parts.append(f"{outcome.jobs_deleted} finished job(s) deleted")
    if outcome.bots_forgotten:
        parts.append(f"{outcome.bots_forgotten} offline bot(s) forgotten")
    return ", ".join(parts)
