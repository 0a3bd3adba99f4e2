"""Waiting without polling: a claim held until jobs arrive, a GET held until a job ends.

`Waiters` is the store's listener: the store says "jobs for these operations may be
available" or "this job finished", and every request waiting on that wakes at
once. A notice can be missed (another process without LISTEN/NOTIFY, a race), so
each waiter also looks again about every `recheck_s` (jittered): a missed notice costs
little. A claim's re-check is one read ("is a job due?"); it claims only when one is.

A claim's first try is a write transaction when jobs are likely there (the busy path)
and a read first when they probably are not: `Waiters` keeps a process-local hint, the
operations whose last claim here came back short, with no jobs announced for them since
beyond what the waiting claims they woke can take. The hint only orders a read and a
transaction; the answers come from the store.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from botfleet.clock import Clock
from botfleet.protocol.messages import TERMINAL_STATES
from coordinator.store.base import ClaimInput, JobRecord, ReportInput, ReportOutcome, Store

log = logging.getLogger(__name__)

RECHECK_JITTER = 0.2
# Bounds the hint's set of drained operations (names come from bots); forgetting it only
# makes claims try a transaction first again.
MAX_DRAINED_OPERATIONS = 1024

ClaimObserver = Callable[[float, list[JobRecord]], None]
"""Told the duration (seconds) and the jobs of every claim made in the store."""


class Handout:
    """A counted notice being handed out: wake waiting claims until their limits cover
    the jobs, and wake more when a woken claim gets fewer than it could take."""

    def __init__(self, operations: tuple[str, ...], remaining: int) -> None:
        self.operations = operations
        self.remaining = remaining  # jobs of the notice not known to be claimed yet
        self.covered = 0  # the limits of the woken claims that have not claimed yet
        self.tried: set[ClaimWatch] = set()


class ClaimWatch:
    """One waiting claim: its event, its limit, the hand-out that woke it, and the one
    its claim in progress answers (settled once the claim knows what it got)."""

    def __init__(self, limit: int) -> None:
        self.event = asyncio.Event()
        self.limit = max(limit, 1)
        self.handout: Handout | None = None
        self.pending: Handout | None = None
        # Set by a notice of jobs (claim at once); a bot's freed capacity only sets the
        # event (look whether a job is due first: usually none is).
        self.jobs_announced = False


class Waiters:
    """Waiting requests, by operation, by job id and by bot (a `StoreListener`)."""

    def __init__(self) -> None:
        # Insertion-ordered: a counted notice wakes the claims that have waited longest.
        self._by_operation: dict[str, dict[ClaimWatch, None]] = {}
        self._by_job: dict[str, set[asyncio.Event]] = {}
        self._by_bot: dict[str, set[asyncio.Event]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        # The claim hint: operations whose last claim in this process got fewer jobs
        # than its limit, with no unclaimed jobs announced for them since; and how many
        # such announcements there were (a claim that overlapped one leaves the hint).
        self._drained: set[str] = set()
        self._job_notices = 0

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
        for watches in self._by_operation.values():
            for watch in watches:
                watch.jobs_announced = True
        for event in self._events():
            event.set()

    # ---- StoreListener
    def jobs_available(self, operations: Sequence[str], count: int | None = None) -> None:
        """`count` jobs for these operations became claimable (None: unknown, wake all)."""
        self._call_on_loop(self._jobs_available, tuple(operations), count)

    def job_finished(self, job_id: str) -> None:
        self._call_on_loop(_set_all, self._by_job, (job_id,))

    def bot_capacity_changed(self, bot_id: str) -> None:
        """A bot's report, cancellation or new assignment may let its waiting claim go on.

        A bot refills a freed slot at once, so its next claim can reach us before the
        report that freed the slot: the claim then waits at the concurrency cap, and
        must wake when the report lands rather than at the next recheck. Such a claim
        reads whether a job is due before it claims, so the usual report (nothing
        queued) costs no claim transaction.
        """
        self._call_on_loop(_set_all, self._by_bot, (bot_id,))

    # ---- the claim hint
    @property
    def job_notices(self) -> int:
        """Announcements of jobs no waiting claim was woken for, so far (taken before a
        claim, for `note_claim`)."""
        return self._job_notices

    def jobs_likely(self, operations: Sequence[str]) -> bool:
        """Whether a claim for these operations probably finds jobs: yes unless this
        process's last claim for each came back short, and jobs announced since went to
        the waiting claims they woke. Only chooses between claiming at once and reading
        first; never an answer."""
        drained = self._drained
        return not drained or any(op not in drained for op in operations)

    def note_claim(
        self, operations: Sequence[str], limit: int, claimed: int, notices_before: int
    ) -> None:
        """A claim made in the store got `claimed` of `limit` jobs. Full: more may be
        there. Short: the queue ran dry (or the bot's room was smaller), unless jobs
        were announced while it ran (`notices_before`: `job_notices` before it)."""
        if limit <= 0:
            return
        if claimed >= limit:
            if self._drained:
                self._drained.difference_update(operations)
        elif notices_before == self._job_notices:
            if len(self._drained) >= MAX_DRAINED_OPERATIONS:
                self._drained.clear()
            self._drained.update(operations)

    # ---- waiting
    def watch_operations(
        self, operations: Iterable[str], bot_id: str | None = None, limit: int = 1
    ) -> AbstractContextManager[ClaimWatch]:
        """Wait for claimable jobs. After each claim, `settle` what it got."""
        return _OperationsWatch(self, tuple(operations), bot_id, limit)

    def enter_operations(self, keys: tuple[str, ...], bot_id: str | None, limit: int) -> ClaimWatch:
        """`watch_operations` entered (a context manager class, not a generator: this
        runs for every long-poll claim)."""
        watch = ClaimWatch(limit)
        if self._closed:
            watch.event.set()
            watch.jobs_announced = True
        for key in keys:
            group = self._by_operation.get(key)
            if group is None:
                group = self._by_operation[key] = {}
            group[watch] = None
        if bot_id is not None:
            self._add(self._by_bot, bot_id, watch.event)
        return watch

    def leave_operations(
        self, watch: ClaimWatch, keys: tuple[str, ...], bot_id: str | None
    ) -> None:
        if bot_id is not None:
            self._discard(self._by_bot, bot_id, watch.event)
        for key in keys:
            group = self._by_operation.get(key)
            if group is not None:
                group.pop(watch, None)
                if not group:
                    del self._by_operation[key]
        # Gone before it claimed what it was woken for: those jobs go to another.
        self.settle(watch, claimed=0, jobs_left=True)
        self.begin_claim(watch)
        self.settle(watch, claimed=0, jobs_left=True)

    def begin_claim(self, watch: ClaimWatch) -> None:
        """Before a claim: clear the event; the claim answers the hand-out that set it."""
        self.settle(watch, claimed=0, jobs_left=True)
        watch.event.clear()
        watch.jobs_announced = False
        watch.pending, watch.handout = watch.handout, None

    def settle(self, watch: ClaimWatch, claimed: int, jobs_left: bool) -> None:
        """The claim got `claimed` jobs; `jobs_left`: may jobs remain (after an empty
        claim: whether one is due). If it was woken for jobs, wake more claims if the
        woken ones cannot cover what is left."""
        handout, watch.pending = watch.pending, None
        if handout is None:
            return
        handout.covered -= watch.limit
        handout.remaining -= claimed
        if claimed == 0 and not jobs_left:
            handout.remaining = 0  # someone else took them: stop handing out
        self._hand_out(handout)

    def watch_job(self, job_id: str) -> AbstractContextManager[asyncio.Event]:
        return _JobWatch(self, job_id)

    def enter_job(self, job_id: str) -> asyncio.Event:
        event = asyncio.Event()
        self._add(self._by_job, job_id, event)
        return event

    def leave_job(self, job_id: str, event: asyncio.Event) -> None:
        self._discard(self._by_job, job_id, event)

    def waiting(self) -> int:
        """How many requests wait (for tests and metrics)."""
        return len(set(self._events()))

    def _events(self) -> Iterator[asyncio.Event]:
        for watches in self._by_operation.values():
            for watch in watches:
                yield watch.event
        for table in (self._by_job, self._by_bot):
            for group in table.values():
                yield from group

    def _add(self, table: dict[str, set[asyncio.Event]], key: str, event: asyncio.Event) -> None:
        if self._closed:
            event.set()
        group = table.get(key)
        if group is None:
            group = table[key] = set()
        group.add(event)

    @staticmethod
    def _discard(table: dict[str, set[asyncio.Event]], key: str, event: asyncio.Event) -> None:
        group = table.get(key)
        if group is not None:
            group.discard(event)
            if not group:
                del table[key]

    def _call_on_loop(self, function: Callable[..., None], *args: Any) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if self._loop is None or running is self._loop:
            function(*args)
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(function, *args)

    def _jobs_available(self, operations: tuple[str, ...], count: int | None) -> None:
        if count is None:
            self._jobs_unclaimed(operations)
            for key in operations:
                for watch in self._by_operation.get(key, ()):
                    watch.jobs_announced = True
                    watch.event.set()
            return
        self._hand_out(Handout(operations, count))

    def _hand_out(self, handout: Handout) -> None:
        """Wake untried, idle claims, longest waiting first, until their limits cover
        the jobs not yet claimed. Each claim is tried once per hand-out, so a hand-out
        nobody can take ends (re-checks remain the safety net)."""
        for key in handout.operations:
            for watch in self._by_operation.get(key, ()):
                if handout.covered >= handout.remaining:
                    return
                if watch in handout.tried or watch.handout is not None or watch.event.is_set():
                    continue
                handout.tried.add(watch)
                handout.covered += watch.limit
                watch.handout = handout
                watch.jobs_announced = True
                watch.event.set()
        if handout.covered < handout.remaining:
            self._jobs_unclaimed(handout.operations)

    def _jobs_unclaimed(self, operations: tuple[str, ...]) -> None:
        """Jobs came that the waiting claims may not take: a claim that comes now
        claims at once. (Jobs the woken claims cover leave the hint as it is: a new
        claim reads first, and the one job of a one-at-a-time producer, taken by the
        claim its notice woke, costs no second claim transaction.)"""
        self._job_notices += 1
        if self._drained:
            self._drained.difference_update(operations)


def _set_all(table: dict[str, set[asyncio.Event]], keys: tuple[str, ...]) -> None:
    for key in keys:
        for event in table.get(key, ()):
            event.set()


class _OperationsWatch:
    __slots__ = ("_bot_id", "_keys", "_limit", "_waiters", "_watch")

    def __init__(
        self, waiters: Waiters, keys: tuple[str, ...], bot_id: str | None, limit: int
    ) -> None:
        self._waiters = waiters
        self._keys = keys
        self._bot_id = bot_id
        self._limit = limit
        self._watch: ClaimWatch | None = None

    def __enter__(self) -> ClaimWatch:
        self._watch = self._waiters.enter_operations(self._keys, self._bot_id, self._limit)
        return self._watch

    def __exit__(self, *exc_info: object) -> None:
        if self._watch is not None:
            self._waiters.leave_operations(self._watch, self._keys, self._bot_id)
            self._watch = None


class _JobWatch:
    __slots__ = ("_event", "_job_id", "_waiters")

    def __init__(self, waiters: Waiters, job_id: str) -> None:
        self._waiters = waiters
        self._job_id = job_id
        self._event: asyncio.Event | None = None

    def __enter__(self) -> asyncio.Event:
        self._event = self._waiters.enter_job(self._job_id)
        return self._event

    def __exit__(self, *exc_info: object) -> None:
        if self._event is not None:
            self._waiters.leave_job(self._job_id, self._event)
            self._event = None


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
        # Jobs probably there (the busy path): claim at once. Otherwise read first
        # (about a seventh of an empty claim transaction) and claim only if one is due.
        look_first = not self._waiters.jobs_likely(operations)
        if wait_s <= 0:
            if look_first:
                outlook = await self._store.claim_outlook(bot_id, operations)
                if not outlook.bot_online:
                    return None
                if not _is_due(self._seconds_until(outlook.next_run_at)):
                    return []
            return await self._claim(bot_id, operations, limit, lease_ttl_s)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        # Watch before the first look, so a job submitted in between is not missed: its
        # notice sets the event, and the wait below returns at once.
        with self._waiters.watch_operations(operations, bot_id, limit) as watch:
            claim_next = True
            while True:
                due_in: float | None = None
                looked = False  # due_in is known: the first look found nothing due
                if claim_next:
                    self._waiters.begin_claim(watch)
                    if look_first:
                        look_first = False
                        outlook = await self._store.claim_outlook(bot_id, operations)
                        if not outlook.bot_online:
                            return None
                        due_in = self._seconds_until(outlook.next_run_at)
                        looked = not _is_due(due_in)
                    if not looked:
                        jobs = await self._claim(bot_id, operations, limit, lease_ttl_s)
                        if jobs is None or jobs:
                            self._waiters.settle(watch, len(jobs or ()), jobs_left=True)
                            return jobs
                remaining = deadline - loop.time()
                if remaining <= 0 or self._waiters.closed:
                    return []
                if not looked:
                    due_in = await self._due_in(operations)
                # Woken for jobs and got none: the wake goes on to another if one is due.
                due_now = _is_due(due_in)
                self._waiters.settle(watch, claimed=0, jobs_left=due_now)
                if not claim_next and due_now:
                    # A re-check (no notice) found a job due: claim it. Otherwise a
                    # re-check costs one read, not a claim transaction: an idle fleet
                    # of waiting claims must cost almost nothing.
                    claim_next = True
                    continue
                timeout = self._recheck_timeout()
                if due_in is not None and due_in > 0:
                    timeout = min(timeout, due_in)
                # Claim at once on a notice of jobs; after a re-check or a bot's freed
                # capacity, look first whether a job is due.
                claim_next = await _wait(watch.event, min(remaining, timeout))
                claim_next = claim_next and watch.jobs_announced
                if not claim_next:
                    watch.event.clear()
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

    def claims_at_once(self, operations: Sequence[str]) -> bool:
        """Whether a claim for these operations goes straight to a claim transaction
        (jobs probably there): then reports riding on it may share that transaction."""
        return self._waiters.jobs_likely(operations)

    async def report_and_claim(
        self,
        bot_id: str,
        reports: Sequence[ReportInput],
        operations: Sequence[str],
        limit: int,
        lease_ttl_s: float,
        reported: Callable[[list[ReportOutcome]], None],
    ) -> list[JobRecord] | None:
        """The reports and a claim at once, in one store transaction, without waiting.

        `reported` is told the reports' outcomes before the claim is observed, the order
        of the two verbs: a job a report sends back to the queue and this claim takes
        again is first let go of, then claimed (the metrics follow jobs by id)."""
        notices = self._waiters.job_notices
        started = time.perf_counter()
        outcomes, jobs = await self._store.report_and_claim(
            ClaimInput(bot_id, operations, limit, lease_ttl_s), reports
        )
        reported(outcomes)
        self._claimed(operations, limit, jobs, notices, started)
        return jobs

    async def _claim(
        self, bot_id: str, operations: Sequence[str], limit: int, lease_ttl_s: float
    ) -> list[JobRecord] | None:
        notices = self._waiters.job_notices
        started = time.perf_counter()
        jobs = await self._store.claim_jobs(ClaimInput(bot_id, operations, limit, lease_ttl_s))
        self._claimed(operations, limit, jobs, notices, started)
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
            self._waiters.note_claim(operations, limit, len(jobs), notices_before)

    async def _due_in(self, operations: Sequence[str]) -> float | None:
        """Seconds until the earliest queued job for these operations is due (<= 0: due
        now); None when none is queued."""
        return self._seconds_until(await self._store.next_run_at(operations))

    def _seconds_until(self, run_at: datetime | None) -> float | None:
        if run_at is None:
            return None
        return (run_at - self._clock.now()).total_seconds()

    def _recheck_timeout(self) -> float:
        """`recheck_s`, jittered by up to a fifth either way, so that a fleet of waiters
        that began together does not re-check in lockstep."""
        return self._recheck_s * self._random.uniform(1 - RECHECK_JITTER, 1 + RECHECK_JITTER)


def _is_due(due_in: float | None) -> bool:
    return due_in is not None and due_in <= 0


async def _wait(event: asyncio.Event, timeout_s: float) -> bool:
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
