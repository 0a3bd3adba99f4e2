"""The jobs running right now: what heartbeats list, what `cancel` reaches, where progress lands."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.state import Job
from botfleet.clock import Clock
from botfleet.protocol import messages as m

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Running:
    job: Job
    started_s: float  # clock.monotonic() at start
    task: asyncio.Task[Any] | None = None
    lease_until: str | None = None
    progress: float | None = None
    message: str | None = None
    started: bool = False  # the job's code began (a job cancelled before is reported at start)
    cancel_reason: str | None = field(default=None)
    cancel_retryable: bool = False


class RunningJobs:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._jobs: dict[str, Running] = {}
        self._lock = threading.Lock()  # progress arrives from handler threads
        self._dirty: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Set when progress changed (for the progress publisher).
        self.progressed = asyncio.Event()
        #: Set whenever no job runs.
        self.empty = asyncio.Event()
        self.empty.set()

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs

    def __iter__(self) -> Iterator[Running]:
        return iter(list(self._jobs.values()))

    def get(self, job_id: str) -> Running | None:
        return self._jobs.get(job_id)

    def add(self, job: Job, task: asyncio.Task[Any] | None = None) -> Running:
        self._loop = asyncio.get_running_loop()
        entry = Running(job=job, started_s=self._clock.monotonic(), task=task)
        self._jobs[job.id] = entry
        self.empty.clear()
        return entry

    def remove(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)
            self._dirty.discard(job_id)
        if not self._jobs:
            self.empty.set()

    def request_cancel(self, job_id: str, reason: str, *, retryable: bool = False) -> bool:
        """Cancel a running job, remembering why (its report says so); False when it does not
        run here or is being cancelled already.

        A job whose task has not started yet is not cancelled outright (it could not report
        then): it reports the cancellation as soon as it starts.
        """
        entry = self._jobs.get(job_id)
        if entry is None or entry.task is None or entry.task.done():
            return False
        if entry.cancel_reason is not None:
            return False
        entry.cancel_reason, entry.cancel_retryable = reason, retryable
        entry.job.cancel()
        if entry.started:
            entry.task.cancel()
        return True

    def longest_s(self, op: str) -> float:
        """How long the longest-running job of `op` has run so far (0: none runs)."""
        now = self._clock.monotonic()
        return max((now - e.started_s for e in self._jobs.values() if e.job.op == op), default=0.0)

    def turning(self, within_s: float) -> int:
        """How many jobs have run no longer than `within_s` so far."""
        now = self._clock.monotonic()
        return sum(1 for e in self._jobs.values() if now - e.started_s <= within_s)

    def note_leases(self, extended: Mapping[str, str]) -> None:
        for job_id, lease_until in extended.items():
            entry = self._jobs.get(job_id)
            if entry is not None:
                entry.lease_until = lease_until

    def wire(self) -> list[m.RunningJob]:
        """The `running` list of a heartbeat."""
        now = self._clock.monotonic()
        return [
            m.RunningJob(
                job_id=entry.job.id,
                op=entry.job.op,
                elapsed_ms=max(0, int((now - entry.started_s) * 1000)),
                progress=entry.progress,
            )
            for entry in self._jobs.values()
        ]

    # ------------------------------------------------------------ progress

    def note_progress(self, job_id: str, fraction: float, message: str | None) -> None:
        """Record a job's progress; safe to call from a handler's thread."""
        with self._lock:
            entry = self._jobs.get(job_id)
            if entry is None:
                return
            entry.progress, entry.message = fraction, message
            self._dirty.add(job_id)
        loop = self._loop
        if loop is None:
            return
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self.progressed.set()
            return
        try:
            loop.call_soon_threadsafe(self.progressed.set)
        except RuntimeError:  # the loop closed under a handler thread that outlived the bot
            log.debug("progress of %s after the bot stopped is dropped", job_id)

    def retry_progress(self, job_id: str) -> None:
        """Send this job's latest progress again next time (the last send failed)."""
        with self._lock:
            if job_id not in self._jobs:
                return
            self._dirty.add(job_id)
        self.progressed.set()

    def take_progress(self) -> list[tuple[Running, float, str | None]]:
        """The latest progress of each job that changed since the last call."""
        with self._lock:
            changed = [
                (self._jobs[job_id], self._jobs[job_id].progress or 0.0, self._jobs[job_id].message)
                for job_id in self._dirty
                if job_id in self._jobs
            ]
            self._dirty.clear()
        self.progressed.clear()
        return changed
