"""The store's listener: requests waiting for jobs, by operation, by job and by bot.

A notice wakes every request it concerns at once; a counted notice wakes only the
claims its jobs need (see `handout`). Notices can be missed, so waiters re-check too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

from coordinator.longpoll.drained import DrainedOperations
from coordinator.longpoll.handout import Handout, answered, wake


class Notice:
    """A counted notice being handed out: where it stands, and the claims it woke
    (each is tried once, so a notice nobody can take ends)."""

    __slots__ = ("handout", "tried")

    def __init__(self, handout: Handout) -> None:
        self.handout = handout
        self.tried: set[ClaimWatch] = set()


class ClaimWatch:
    """One waiting claim: its event, its limit, the notice that woke it, and the one its
    claim in progress answers (settled once the claim knows what it got)."""

    __slots__ = ("event", "jobs_announced", "limit", "notice", "pending")

    def __init__(self, limit: int) -> None:
        self.event = asyncio.Event()
        self.limit = max(limit, 1)
        self.notice: Notice | None = None
        self.pending: Notice | None = None
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
        self._by_job_logs: dict[str, set[asyncio.Event]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self.hint = DrainedOperations()

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
        self.jobs_finished((job_id,))

    def jobs_finished(self, job_ids: Sequence[str]) -> None:
        # One call for a whole commit: from the writer thread each call is a wake-up of
        # the loop (a write to its self-pipe) and a callback.
        self._call_on_loop(_set_all, self._by_job, tuple(job_ids))

    def bot_capacity_changed(self, bot_id: str) -> None:
        """A bot's report, cancellation or new assignment may let its waiting claim go on.

        A bot refills a freed slot at once, so its next claim can reach us before the
        report that freed the slot: the claim then waits at the concurrency cap, and
        must wake when the report lands rather than at the next recheck. Such a claim
        reads whether a job is due before it claims, so the usual report (nothing
        queued) costs no claim transaction.
        """
        self._call_on_loop(_set_all, self._by_bot, (bot_id,))

    # ---- waiting claims
    def watch_operations(
        self, operations: Iterable[str], bot_id: str | None = None, limit: int = 1
    ) -> AbstractContextManager[ClaimWatch]:
        """Wait for claimable jobs. Before each claim `begin_claim`, after it `settle`."""
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
        """Before a claim: clear the event; the claim answers the notice that set it."""
        self.settle(watch, claimed=0, jobs_left=True)
        watch.event.clear()
        watch.jobs_announced = False
        watch.pending, watch.notice = watch.notice, None

    def settle(self, watch: ClaimWatch, claimed: int, jobs_left: bool) -> None:
        """The claim got `claimed` jobs; `jobs_left`: may jobs remain (after an empty
        claim: whether one is due). If it was woken for jobs, wake more claims if the
        woken ones cannot cover what is left."""
        notice, watch.pending = watch.pending, None
        if notice is None:
            return
        notice.handout = answered(notice.handout, watch.limit, claimed, jobs_left)
        self._hand_out(notice)

    # ---- waiting job reads
    def watch_job(self, job_id: str) -> AbstractContextManager[asyncio.Event]:
        return _JobWatch(self, job_id)

    def enter_job(self, job_id: str) -> asyncio.Event:
        event = asyncio.Event()
        self._add(self._by_job, job_id, event)
        return event

    def leave_job(self, job_id: str, event: asyncio.Event) -> None:
        self._discard(self._by_job, job_id, event)

    # ---- waiting log reads: woken by new lines of the job, and by its end
    def logs_arrived(self, job_id: str) -> None:
        self._call_on_loop(_set_all, self._by_job_logs, (job_id,))

    @contextlib.contextmanager
    def watch_job_logs(self, job_id: str) -> Iterator[asyncio.Event]:
        event = self.enter_job(job_id)
        self._add(self._by_job_logs, job_id, event)
        try:
            yield event
        finally:
            self._discard(self._by_job_logs, job_id, event)
            self.leave_job(job_id, event)

    def waiting(self) -> int:
        """How many requests wait (for tests and metrics)."""
        return len(set(self._events()))

    def _events(self) -> Iterator[asyncio.Event]:
        for watches in self._by_operation.values():
            for watch in watches:
                yield watch.event
        for table in (self._by_job, self._by_bot, self._by_job_logs):
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
            self.hint.jobs_unclaimed(operations)
            for key in operations:
                for watch in self._by_operation.get(key, ()):
                    watch.jobs_announced = True
                    watch.event.set()
            return
        self._hand_out(Notice(Handout(operations, count)))

    def _hand_out(self, notice: Notice) -> None:
        """Wake untried, idle claims until their limits cover the jobs not yet claimed;
        jobs left uncovered make the next claim go straight to the store."""
        if not notice.handout.uncovered:
            return
        handout, woken = wake(notice.handout, self._idle(notice))
        notice.handout = handout
        for watch in woken:
            watch.notice = notice
            watch.jobs_announced = True
            watch.event.set()
        if handout.uncovered:
            self.hint.jobs_unclaimed(handout.operations)

    def _idle(self, notice: Notice) -> Iterator[tuple[ClaimWatch, int]]:
        """The claims `notice` may wake, longest waiting first, each marked tried as it
        is handed over (`wake` reads only the claims it wakes)."""
        tried = notice.tried
        for key in notice.handout.operations:
            for watch in self._by_operation.get(key, ()):
                if watch in tried or watch.notice is not None or watch.event.is_set():
                    continue
                tried.add(watch)
                yield watch, watch.limit


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
