"""The request side: a claim held until jobs arrive, a job read held until the job ends."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from botfleet.clock import Clock
from botfleet.protocol.messages import TERMINAL_STATES
from coordinator.longpoll.store_calls import ClaimObserver, StoreCalls
from coordinator.longpoll.waiters import Waiters
from coordinator.store.base import (
    ClaimInput,
    HandedBack,
    JobRecord,
    ReportInput,
    ReportOutcome,
    Store,
)

RECHECK_JITTER = 0.2
# A job due now: what a notice of jobs, or the hint that jobs are probably there, means.
DUE_NOW = 0.0
# A claim waiting for a rate limit's next token waits at least this long: a bucket a
# hair short of a token would otherwise make it claim again and again.
SHORTEST_REFILL_WAIT_S = 0.01

Claimed = Coroutine[Any, Any, list[JobRecord] | None]


def _always() -> bool:
    return True


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
        default_timeout_s: float | None = None,
    ) -> None:
        self._waiters = waiters
        self._hint = waiters.hint
        self._store = StoreCalls(store, clock, waiters.hint, observe_claim)
        self._default_timeout_s = default_timeout_s  # of jobs without their own: the lease
        self._recheck_s = recheck_s
        self._random = rng or random.Random()

    def claim(
        self,
        bot_id: str,
        operations: Sequence[str],
        limit: int,
        lease_ttl_s: float,
        wait_s: float,
        still_wanted: Callable[[], bool] = _always,
        claim_id: str | None = None,
        prefetch: int = 0,
    ) -> Claimed:
        """Jobs claimed (maybe after waiting up to `wait_s`); None for an unknown/offline bot.

        `still_wanted` is asked after each wait: jobs claimed for a client that went
        away would sit under a lease nobody works on. A repeated `claim_id` that has
        jobs running under the bot gets them back at once. (A plain function handing
        back the coroutine of its path: no extra await on the claim's hot path.)
        """
        claim = ClaimInput(
            bot_id,
            operations,
            limit,
            lease_ttl_s,
            claim_id,
            default_timeout_s=self._default_timeout_s,
            prefetch=prefetch,
        )
        if wait_s <= 0:
            return self._claim_now(claim)
        return self._claim_waiting(claim, wait_s, still_wanted)

    def claims_at_once(self, operations: Sequence[str]) -> bool:
        """Whether a claim for these operations goes straight to a claim transaction
        (jobs probably there): then reports riding on it may share that transaction."""
        return self._hint.jobs_likely(operations)

    def report_and_claim(
        self,
        bot_id: str,
        reports: Sequence[ReportInput],
        operations: Sequence[str],
        limit: int,
        lease_ttl_s: float,
        reported: Callable[[list[ReportOutcome]], None],
        claim_id: str | None = None,
        prefetch: int = 0,
    ) -> Claimed:
        """The reports and a claim at once, in one store transaction, without waiting.

        `reported` is told the reports' outcomes before the claim is observed, the order
        of the two verbs: a job a report sends back to the queue and this claim takes
        again is first let go of, then claimed (the metrics follow jobs by id)."""
        claim = ClaimInput(
            bot_id,
            operations,
            limit,
            lease_ttl_s,
            claim_id,
            default_timeout_s=self._default_timeout_s,
            prefetch=prefetch,
        )
        return self._store.report_and_claim(claim, reports, reported)

    async def job(self, job_id: str, wait_s: float) -> JobRecord | None:
        """The job, once terminal or when `wait_s` has passed; None if unknown."""
        if wait_s <= 0:
            return await self._store.job(job_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        with self._waiters.watch_job(job_id) as wake:
            while True:
                wake.clear()
                job = await self._store.job(job_id)
                remaining = deadline - loop.time()
                if job is None or job.state in TERMINAL_STATES or remaining <= 0:
                    return job
                if self._waiters.closed:
                    return job
                await woken(wake, min(remaining, self._recheck_timeout()))

    async def _claim_now(self, claim: ClaimInput) -> list[JobRecord] | None:
        # Jobs probably there (the busy path): claim at once. Otherwise read first (far
        # cheaper than an empty claim transaction) and claim only if one is due, or the
        # claim is a repeat with jobs to hand back.
        if not self._hint.jobs_likely(claim.operations):
            outlook = await self._store.outlook(claim)
            if not outlook.bot_online:
                return None
            due_in = self._store.seconds_until(outlook.next_run_at)
            if not _is_due(due_in) and not outlook.handed_out:
                return []
        return await self._store.claim(claim)

    async def _claim_waiting(
        self, claim: ClaimInput, wait_s: float, still_wanted: Callable[[], bool]
    ) -> list[JobRecord] | None:
        bot_id, operations, limit = claim.bot_id, claim.operations, claim.limit
        waiters, store = self._waiters, self._store
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        # Watch before the first look, so a job submitted in between is not missed: its
        # notice sets the event, and the first wait returns at once.
        with waiters.watch_operations(operations, bot_id, limit) as watch:
            # Try once: at once when jobs are probably there, else after a look.
            due_in: float | None = DUE_NOW
            if not self._hint.jobs_likely(operations):
                outlook = await store.outlook(claim)
                if not outlook.bot_online:
                    return None
                due_in = DUE_NOW if outlook.handed_out else store.seconds_until(outlook.next_run_at)
            # Then, until a claim gets jobs or the time is up: claim, wait, re-check.
            while True:
                if _is_due(due_in):
                    # The claim answers the notice that woke this request, if one did.
                    waiters.begin_claim(watch)
                    jobs = await store.claim(claim)
                    if answers_at_once(jobs):
                        waiters.settle(watch, len(jobs or ()), jobs_left=True)
                        return jobs
                    if self._time_left(loop, deadline) <= 0:
                        return []
                    due_in = await store.due_in(operations, bot_id)
                    # Woken for jobs and got none: the wake goes on to another if one is due,
                    # also one this bot's labels do not meet (another bot's may).
                    jobs_left = _is_due(due_in) or (
                        watch.pending is not None and _is_due(await store.due_in(operations))
                    )
                    waiters.settle(watch, claimed=0, jobs_left=jobs_left)
                    if _is_due(due_in):
                        # Due jobs it could not take: a rate limit's next token is an
                        # event no notice announces, so wait for it as for a run_at.
                        refill_in = await store.tokens_in(operations)
                        if refill_in is not None:
                            due_in = max(refill_in, SHORTEST_REFILL_WAIT_S)
                # Wait for a notice, the next delayed job's run_at, the re-check or the end.
                remaining = self._time_left(loop, deadline)
                if remaining <= 0:
                    return []
                timeout = self._recheck_timeout()
                if due_in is not None and due_in > 0:
                    timeout = min(timeout, due_in)
                await woken(watch.event, min(remaining, timeout))
                if not still_wanted():
                    return []
                if watch.jobs_announced:  # set only with the event, by a notice of jobs
                    due_in = DUE_NOW
                    continue
                # Re-check (or a bot's freed capacity): one read, not a claim transaction,
                # so that an idle fleet of waiting claims costs almost nothing.
                watch.event.clear()
                if self._time_left(loop, deadline) <= 0:
                    return []
                due_in = await store.due_in(operations, bot_id)

    def _time_left(self, loop: asyncio.AbstractEventLoop, deadline: float) -> float:
        """Seconds a claim may still wait; none once the waiters have closed."""
        return 0.0 if self._waiters.closed else deadline - loop.time()

    def _recheck_timeout(self) -> float:
        """`recheck_s`, jittered by up to a fifth either way, so that a fleet of waiters
        that began together does not re-check in lockstep."""
        return self._recheck_s * self._random.uniform(1 - RECHECK_JITTER, 1 + RECHECK_JITTER)


def answers_at_once(jobs: list[JobRecord] | None) -> bool:
    """Whether a claim's answer ends its request however long it may wait: jobs, an
    unknown or offline bot (None), or a repeated `claim_id` (`HandedBack`, maybe empty),
    which claims nothing new, so waiting could bring it nothing."""
    return jobs is None or bool(jobs) or isinstance(jobs, HandedBack)


def _is_due(due_in: float | None) -> bool:
    return due_in is not None and due_in <= 0


async def woken(event: asyncio.Event, timeout_s: float) -> bool:
    """True when the event was set, False when `timeout_s` passed first.

    `asyncio.timeout` rather than `wait_for`: no task per wait, only a timer handle.
    A set that lands in the same turn as the timeout still counts as a wake.
    """
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True
