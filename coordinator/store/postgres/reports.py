"""A batch of reports decided over locked job rows, then written in two bulk statements.

The PostgreSQL store locks the reported jobs (`SELECT … FOR UPDATE`, in id order),
loads them here, and applies each report in order with the shared rules
(`rules.decide_report`), updating its view of each job so a report repeated within one
batch sees the first one's effect. The resulting changes are written by statements
whose WHERE re-checks each job's state and attempt as they were read (the fence).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from coordinator.store.base import ReportInput, ReportOutcome, RetryDelay
from coordinator.store.rules import Decision, Effect, JobSnapshot, decide_report

NO_ERROR_TEXT = "the job failed without an error message"


@dataclass(slots=True)
class LockedJob:
    """A job row as locked for this transaction, updated as reports apply."""

    id: str
    op: str
    snapshot: JobSnapshot
    held: dict[int, str | None] = field(default_factory=dict)  # this bot's attempts: outcome
    live_attempt: int | None = None  # the attempt whose lease is live (any bot's), if any
    read_state: str = ""  # the fence: state and attempt as locked
    read_attempt: int = 0

    def __post_init__(self) -> None:
        self.read_state = self.snapshot.state
        self.read_attempt = self.snapshot.attempt


@dataclass(frozen=True, slots=True)
class JobChange:
    state: str
    run_at: datetime | None  # None keeps the row's run_at
    finished_at: datetime | None
    result: dict[str, Any] | None
    result_attempt: int | None
    error: str | None


@dataclass(slots=True)
class ReportBatch:
    bot_id: str
    now: datetime
    retry_delay: RetryDelay
    jobs: dict[str, LockedJob]
    changes: dict[str, JobChange] = field(default_factory=dict)
    ended: dict[tuple[str, int], str] = field(default_factory=dict)  # (job, attempt) -> outcome
    requeued_ops: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)

    def add_attempt(
        self, job_id: str, attempt: int, bot_id: str, outcome: str | None, live: bool
    ) -> None:
        job = self.jobs.get(job_id)
        if job is None:
            return
        if live:
            job.live_attempt = attempt
        if bot_id == self.bot_id:
            job.held[attempt] = outcome

    def apply_all(self, reports: Iterable[ReportInput]) -> list[ReportOutcome]:
        return [self.apply(report) for report in reports]

    def apply(self, report: ReportInput) -> ReportOutcome:
        job = self.jobs.get(report.job_id)
        snapshot = job.snapshot if job is not None else None
        held = job.held if job is not None else {}
        decision = decide_report(snapshot, held, self.bot_id, report, self.retry_delay)
        if job is not None and decision.effect is not Effect.NONE:
            self._apply_effect(job, decision, report)
        return decision.outcome

    def _apply_effect(self, job: LockedJob, decision: Decision, report: ReportInput) -> None:
        attempt = decision.attempt
        assert attempt is not None, "an effect always names its attempt"
        if decision.effect is Effect.SUCCEED:
            # The first result wins, from any attempt; a live lease of another attempt
            # is over (its holder gets 409 when it reports).
            self._end_live_attempt(job, "succeeded" if job.live_attempt == attempt else "cancelled")
            job.snapshot = replace(job.snapshot, state="succeeded", result_attempt=attempt)
            self.changes[job.id] = JobChange(
                "succeeded", None, self.now, report.result or {}, attempt, None
            )
            self.finished.append(job.id)
            return
        self._end_live_attempt(job, "failed")
        error = report.error or NO_ERROR_TEXT
        if decision.effect is Effect.RETRY:
            job.snapshot = replace(job.snapshot, state="queued")
            run_at = self.now + timedelta(seconds=decision.retry_delay_s)
            self.changes[job.id] = JobChange("queued", run_at, None, None, None, error)
            self.requeued_ops.append(job.op)
        else:
            job.snapshot = replace(job.snapshot, state="failed")
            self.changes[job.id] = JobChange("failed", None, self.now, None, None, error)
            self.finished.append(job.id)

    def _end_live_attempt(self, job: LockedJob, outcome: str) -> None:
        live = job.live_attempt
        if live is None:
            return
        self.ended[(job.id, live)] = outcome
        if live in job.held:
            job.held[live] = outcome
        job.live_attempt = None
