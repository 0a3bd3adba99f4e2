"""A batch of reports decided over the job rows one transaction read, on every backend.

A backend reads the reported jobs (PostgreSQL locks them) and the attempts this bot
held, hands them to a `ReportBatch`, and writes what it decided: one row per job that
moved, fenced on the state and attempt as read, and the live attempts that ended. Each
report is decided with `rules.decide_report` against the state the earlier reports of
the batch left, so a report repeated within one batch sees the first one's effect.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from coordinator.store.base import ReportInput, ReportOutcome, RetryDelay
from coordinator.store.rules import NO_ERROR_TEXT, Decision, Effect, JobSnapshot, decide_report


@dataclass(slots=True)  # not frozen: one per report, and frozen __init__ costs 4x
class JobChange:
    """A job's whole new state after the batch (its last write wins; never changed)."""

    job_id: str
    state: str
    read_state: str  # the fence: state and attempt as the transaction read them
    read_attempt: int
    run_at: datetime | None = None  # None keeps the row's run_at
    finished_at: datetime | None = None
    result: dict[str, Any] | None = None
    result_attempt: int | None = None
    error: str | None = None


@dataclass(slots=True)
class _Job:
    op: str
    read: JobSnapshot
    now: JobSnapshot
    held: dict[int, str | None] = field(default_factory=dict)  # this bot's attempts: outcome


@dataclass(slots=True)
class ReportBatch:
    bot_id: str
    now: datetime
    retry_delay: RetryDelay
    _jobs: dict[str, _Job] = field(default_factory=dict)
    changes: dict[str, JobChange] = field(default_factory=dict)
    ended: dict[tuple[str, int], str] = field(default_factory=dict)  # (job, attempt) -> outcome
    ended_errors: dict[tuple[str, int], str] = field(default_factory=dict)  # of failed ones
    requeued_ops: list[str] = field(default_factory=list)  # one entry per job queued again
    finished: list[str] = field(default_factory=list)  # jobs now terminal

    def add_job(self, job_id: str, op: str, snapshot: JobSnapshot) -> None:
        self._jobs[job_id] = _Job(op, snapshot, snapshot)

    def add_attempt(self, job_id: str, attempt: int, outcome: str | None) -> None:
        """One attempt of a read job that was handed to this bot (outcome None: live)."""
        job = self._jobs.get(job_id)
        if job is not None:
            job.held[attempt] = outcome

    def apply_all(self, reports: Iterable[ReportInput]) -> list[ReportOutcome]:
        return [self.apply(report) for report in reports]

    def apply(self, report: ReportInput) -> ReportOutcome:
        job = self._jobs.get(report.job_id)
        snapshot = job.now if job is not None else None
        held: Mapping[int, str | None] = job.held if job is not None else {}
        decision = decide_report(snapshot, held, self.bot_id, report, self.retry_delay)
        if job is not None and decision.effect is not Effect.NONE:
            self._apply_effect(report.job_id, job, decision, report)
        return decision.outcome

    def _apply_effect(
        self, job_id: str, job: _Job, decision: Decision, report: ReportInput
    ) -> None:
        attempt = decision.attempt
        assert attempt is not None, "an effect always names its attempt"
        if decision.effect is Effect.SUCCEED:
            # The first result wins, from any attempt; a live lease of another attempt
            # is over (its holder gets a conflict when it reports).
            live = job.now.live_attempt
            self._end_live_attempt(job_id, job, "succeeded" if live == attempt else "cancelled")
            job.now = job.now.moved_to("succeeded", result_attempt=attempt)
            result = report.result if report.result is not None else {}
            read = job.read
            self.changes[job_id] = JobChange(
                job_id,
                "succeeded",
                read.state,
                read.attempt,
                finished_at=self.now,
                result=result,
                result_attempt=attempt,
            )
            self.finished.append(job_id)
            return
        error = report.error or NO_ERROR_TEXT
        self._end_live_attempt(job_id, job, "failed", error)
        if decision.effect is Effect.RETRY:
            job.now = job.now.moved_to("queued")
            run_at = self.now + timedelta(seconds=decision.retry_delay_s)
            self._moved(job_id, job, "queued", run_at=run_at, error=error)
            self.requeued_ops.append(job.op)
        else:
            job.now = job.now.moved_to("failed")
            self._moved(job_id, job, "failed", finished_at=self.now, error=error)
            self.finished.append(job_id)

    def _moved(self, job_id: str, job: _Job, state: str, **fields: Any) -> None:
        self.changes[job_id] = JobChange(job_id, state, job.read.state, job.read.attempt, **fields)

    def _end_live_attempt(
        self, job_id: str, job: _Job, outcome: str, error: str | None = None
    ) -> None:
        live = job.now.live_attempt
        if live is None:
            return
        self.ended[(job_id, live)] = outcome
        if error is not None:
            self.ended_errors[(job_id, live)] = error
        if live in job.held:
            job.held[live] = outcome
