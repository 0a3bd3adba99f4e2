"""The schedule firer: makes the jobs of due schedules, in every coordinator at once.

Which due time makes which job is decided by the store (`Store.fire_schedules`, one
transaction), so firers in several processes never make a job twice, and a restart
forgets nothing. The firer only decides when to look: it reads the earliest next due time
(a point read) at least every `max_wait_s`, so a schedule put through another
coordinator is seen within that, and opens a write transaction only once something is
due. Waiting is in real time; what is due comes from the injected clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from botfleet.clock import Clock
from coordinator.store.base import Store
from coordinator.store.schedules import FIRE_BATCH, FiredSchedule, JobMaker

log = logging.getLogger(__name__)

FiredObserver = Callable[[FiredSchedule], None]


class ScheduleFirer:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        make_job: JobMaker,
        observe: FiredObserver | None = None,
        max_wait_s: float = 1.0,
        batch: int = FIRE_BATCH,
        busy_wait_s: float = 0.05,
    ) -> None:
        self._store = store
        self._clock = clock
        self._make_job = make_job
        self._observe = observe
        self._max_wait_s = max_wait_s
        self._batch = batch
        # After a pass that fired nothing although something was due: another coordinator
        # is firing it (its rows are locked), or the store failed. Not a busy loop.
        self._busy_wait_s = busy_wait_s
        self.failures = 0

    async def fire_due(self) -> list[FiredSchedule]:
        """Every schedule due now, batch after batch; a failure is logged and counted
        (the due times stay due: the next pass fires them)."""
        fired: list[FiredSchedule] = []
        while True:
            try:
                batch = await self._store.fire_schedules(self._make_job, self._batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.failures += 1
                log.exception("schedules: firing failed; trying again in %ss", self._max_wait_s)
                return fired
            for one in batch:
                log.debug(
                    "schedule %s: due %s, job %s", one.name, one.due_at.isoformat(), one.job_id
                )
                if self._observe is not None:
                    self._observe(one)
            fired.extend(batch)
            if len(batch) < self._batch:
                return fired

    async def wait_s(self) -> float:
        """How long to sleep before the next look."""
        try:
            due = await self._store.next_schedule_due()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning("schedules: reading the next due time failed: %s", error)
            return self._max_wait_s
        if due is None:
            return self._max_wait_s
        return min(self._max_wait_s, max(0.0, (due - self._clock.now()).total_seconds()))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            wait = await self.wait_s()
            failures = self.failures
            if wait <= 0 and not await self.fire_due():
                wait = self._max_wait_s if self.failures > failures else self._busy_wait_s
            try:
                await asyncio.wait_for(stop.wait(), wait)
            except TimeoutError:
                continue
