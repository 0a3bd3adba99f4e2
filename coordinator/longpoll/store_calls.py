"""Every store call of the long-poll, in one place: each claim timed, observed and told
to the claim hint."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from botfleet.clock import Clock
from coordinator.longpoll.drained import DrainedOperations
from coordinator.store.base import (
    ClaimInput,
    ClaimOutlook,
    HandedBack,
    JobRecord,
    ReportInput,
    ReportOutcome,
    Store,
)

ClaimObserver = Callable[[float, list[JobRecord]], None]
"""Told the duration (seconds) and the jobs of every claim made in the store."""


class StoreCalls:
    """The store as the long-poll uses it.

    Reads that need no bookkeeping hand back the store's own awaitable, so a claim
    awaits no more coroutines than the store call itself.
    """

    __slots__ = ("_clock", "_hint", "_observe_claim", "_store")

    def __init__(
        self,
        store: Store,
        clock: Clock,
        hint: DrainedOperations,
        observe_claim: ClaimObserver | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._hint = hint
        self._observe_claim = observe_claim

    def outlook(self, claim: ClaimInput) -> Awaitable[ClaimOutlook]:
        """Whether the bot may claim, when a job is next due, and whether the claim is a
        repeat that has jobs to hand back, in one read."""
        if claim.claim_id is None:
            return self._store.claim_outlook(claim.bot_id, claim.operations)
        return self._store.claim_outlook(claim.bot_id, claim.operations, claim.claim_id)

    def job(self, job_id: str) -> Awaitable[JobRecord | None]:
        return self._store.get_job(job_id)

    async def due_in(self, operations: Sequence[str], bot_id: str | None = None) -> float | None:
        """Seconds until the earliest queued job for these operations is due (<= 0: due
        now); None when none is queued. With `bot_id`: among the jobs that bot may take
        (its labels meet their requirements)."""
        return self.seconds_until(await self._store.next_run_at(operations, bot_id))

    def tokens_in(self, operations: Sequence[str]) -> Awaitable[float | None]:
        """Seconds until a rate limit holding back due jobs of these operations refills."""
        return self._store.seconds_until_tokens(operations)

    def seconds_until(self, run_at: datetime | None) -> float | None:
        if run_at is None:
            return None
        return (run_at - self._clock.now()).total_seconds()

    async def claim(self, claim: ClaimInput) -> list[JobRecord] | None:
        """Up to `limit` due jobs under a lease (or a repeat's jobs); None for an unknown
        or offline bot."""
        notices = self._hint.notices
        started = time.perf_counter()
        jobs = await self._store.claim_jobs(claim)
        self._claimed(claim.operations, claim.limit, jobs, notices, started)
        return jobs

    async def report_and_claim(
        self,
        claim: ClaimInput,
        reports: Sequence[ReportInput],
        reported: Callable[[list[ReportOutcome]], None],
    ) -> list[JobRecord] | None:
        """The reports and a claim in one store transaction; `reported` is told the
        reports' outcomes before the claim is observed."""
        notices = self._hint.notices
        started = time.perf_counter()
        outcomes, jobs = await self._store.report_and_claim(claim, reports)
        reported(outcomes)
        self._claimed(claim.operations, claim.limit, jobs, notices, started)
        return jobs

    def _claimed(
        self,
        operations: Sequence[str],
        limit: int,
        jobs: list[JobRecord] | None,
        notices_before: int,
        started: float,
    ) -> None:
        if jobs is not None:
            if self._observe_claim is not None:
                self._observe_claim(time.perf_counter() - started, jobs)
            # A repeat claimed nothing: what it got back tells nothing of the queue.
            if not isinstance(jobs, HandedBack):
                self._hint.note_claim(operations, limit, len(jobs), notices_before)
