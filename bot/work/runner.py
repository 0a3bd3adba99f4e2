"""The job runner: each claimed job in a task of its own, holding a slot until it ends.

A job's own failure (its handler raised) becomes its `fail` report; a job cancelled
(by the coordinator, a timeout, or at the end of a drain's grace) reports why; a job
abandoned (a hard stop, a halt) reports nothing and its lease runs out. A plain
handler's thread that outlives its job is abandoned: the slot comes back at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager

from bot.joblog.buffer import LogBuffer
from bot.joblog.capture import JobLog, capturing
from bot.jobs import Outcome, Registry, failed, run
from bot.logging_setup import job_context
from bot.state import Job
from bot.waiting import sleep_or
from bot.work.durations import Durations
from bot.work.hooks import SchedulerHooks
from bot.work.prefetch import RecentDurations, RecentStarts
from bot.work.running_jobs import RunningJobs
from bot.work.slots import Slots
from bot.work.threads import ABANDONED_LIMIT, HandlerThreads
from botfleet.clock import Clock
from botfleet.protocol import messages as m
from botfleet.tracing import NO_SPAN, Tracer

log = logging.getLogger(__name__)

JobTask = asyncio.Task[m.ReportItem | None]
ReportSink = Callable[[m.ReportItem], None]


class JobRunner:
    def __init__(
        self,
        *,
        registry: Registry,
        clock: Clock,
        slots: Slots,
        hooks: SchedulerHooks,
        on_change: Callable[[], None],
        logs: LogBuffer | None = None,
    ) -> None:
        self.registry = registry
        self.logs = logs  # where handlers' log lines wait to be sent (None: kept nowhere)
        self.log_sink = None if logs is None else logs.write
        self.clock = clock
        self.slots = slots
        self.hooks = hooks
        self._on_change = on_change  # the pipeline's activity may have changed
        self.running = RunningJobs(clock)
        self.threads = HandlerThreads()
        self.finished: Counter[tuple[str, str]] = Counter()  # (op, succeeded/failed)
        self.durations = Durations()  # how long handlers ran, by op
        self.recent = RecentDurations()  # how long the latest jobs held a slot, by op
        self.starts = RecentStarts()  # when the latest jobs started: the bot's pace
        # Told after a slot freed up and its report is queued: prefetched jobs start then.
        self.on_slot_free: Callable[[], object] | None = None
        self._tracer = Tracer("bot")  # continues the producer's trace when OpenTelemetry is there
        self._tasks: set[JobTask] = set()

    def start(self, job: Job, sink: ReportSink | None = None) -> JobTask:
        """Run `job` in its own task, holding a slot until the handler is done; its report
        goes to `sink`."""
        self.slots.take()
        self.starts.observe(self.clock.monotonic())
        task = asyncio.create_task(self._run(job), name=f"job:{job.id}")
        self.running.add(job, task)
        self._tasks.add(task)
        # A callback, not a `finally`: a task cancelled before it ever ran must free its slot too.
        task.add_done_callback(lambda done: self._job_done(job, done, sink))
        self._on_change()
        return task

    def _job_done(self, job: Job, task: JobTask, sink: ReportSink | None) -> None:
        job_id = job.id
        self._tasks.discard(task)
        entry = self.running.get(job_id)
        if entry is not None and entry.started:
            self.recent.observe(job.op, self.clock.monotonic() - entry.started_s)
        self.running.remove(job_id)
        # A thread handler that outlived its job gives its slot back all the same: one
        # that never returns must not hold it for ever.
        if self.threads.abandon(task):
            self._abandoned(job)
        self.slots.release()
        # The report after the slot: the claim that refills the slot can carry it.
        if sink is not None and not task.cancelled():
            error = task.exception()
            if error is not None:
                log.error("job %s: the bot failed running it", job_id, exc_info=error)
            elif (report := task.result()) is not None:
                sink(report)
        if self.on_slot_free is not None:
            self.on_slot_free()
        self._on_change()

    async def _run(self, job: Job) -> m.ReportItem | None:
        with job_context(job.id):
            log.debug("job %s (%s, attempt %d) started", job.id, job.op, job.attempt)
            entry = self.running.get(job.id)
            if entry is not None:
                entry.started = True
            started_s = self.clock.monotonic()
            try:
                if entry is not None and entry.cancel_reason is not None:
                    outcome = self._cancelled(job)  # cancelled before it began
                else:
                    job_log = None if self.logs is None else JobLog(job.id, job.attempt, self.logs)
                    with self._span(job), capturing(job_log):
                        outcome = await run(self.registry, job, self.threads)
            except asyncio.CancelledError:
                entry = self.running.get(job.id)
                if entry is None or entry.cancel_reason is None:
                    raise  # a hard stop: nothing to report, the lease runs out
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()
                outcome = self._cancelled(job)
            report = outcome.report
            succeeded = report.action == "complete"
            self.durations.observe(job.op, self.clock.monotonic() - started_s)
            self.finished[(job.op, "succeeded" if succeeded else "failed")] += 1
            # Debug for a success (a busy bot runs thousands a second), a warning for a
            # failure, which someone may need to look at.
            if succeeded:
                log.debug("job %s succeeded", job.id)
            else:
                log.warning("job %s failed: %s", job.id, report.error)
            self.hooks.job_finished(job, outcome)
            return report

    def _span(self, job: Job) -> AbstractContextManager[None]:
        if not self._tracer.enabled:  # no OpenTelemetry: not even the attributes to build
            return NO_SPAN
        return self._tracer.span("job.run", _span_attributes(job), parent=job.metadata)

    def _abandoned(self, job: Job) -> None:
        alive = self.threads.abandoned
        log.warning(
            "job %s (%s): its handler ignored the cancellation; its thread is abandoned and "
            "runs on, its slot is free (%d abandoned thread(s) running, a restart past %d)",
            job.id,
            job.op,
            alive,
            ABANDONED_LIMIT,
        )
        if alive > ABANDONED_LIMIT:
            self.hooks.threads_exhausted(alive)

    def _cancelled(self, job: Job) -> Outcome:
        entry = self.running.get(job.id)
        assert entry is not None and entry.cancel_reason is not None
        return Outcome(failed(job, entry.cancel_reason, retryable=entry.cancel_retryable))

    def cancel(self, job_id: str, reason: str = "cancelled", *, retryable: bool = False) -> bool:
        """Stop a running job; it is reported failed with `reason` (for good, by default)."""
        cancelled = self.running.request_cancel(job_id, reason, retryable=retryable)
        if cancelled:
            log.info("job %s: cancelling (%s)", job_id, reason)
        return cancelled

    def cancel_all(self, reason: str, *, retryable: bool) -> int:
        """Cancel every running job (the end of a drain's grace period); how many."""
        return sum(self.cancel(e.job.id, reason, retryable=retryable) for e in self.running)

    async def wait_jobs(self, hard: asyncio.Event, limit_s: float | None = None) -> bool:
        """Wait for running jobs to end; False when `hard` is set or `limit_s` passes first."""
        deadline = None if limit_s is None else self.clock.monotonic() + limit_s
        while len(self.running):
            left = None if deadline is None else deadline - self.clock.monotonic()
            if hard.is_set() or (left is not None and left <= 0):
                return False
            await sleep_or(self.clock, left, self.running.empty, hard)
        return True

    async def abandon_jobs(self, wait_s: float | None = None) -> int:
        """Stop every running job without a report (a hard stop): their leases run out.

        Waits for their tasks to end, at most `wait_s` (a handler may ignore cancellation).
        """
        tasks = [task for task in self._tasks if not task.done()]
        for task in tasks:
            task.cancel()
        if wait_s is None:
            await asyncio.gather(*tasks, return_exceptions=True)
        elif tasks:
            await sleep_or(self.clock, wait_s, self.running.empty)
        if tasks:
            log.warning(
                "%d running job(s) abandoned, with no report: the coordinator hands them out "
                "again (at once after deregister, else when their leases run out)",
                len(tasks),
            )
        return len(tasks)


def _span_attributes(job: Job) -> dict[str, str | int]:
    return {"botfleet.job_id": job.id, "botfleet.op": job.op, "botfleet.attempt": job.attempt}
