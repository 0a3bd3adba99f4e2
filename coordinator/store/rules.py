"""Pure decisions shared by every store backend: what a report does, when a command took
hold, when a bot gets no jobs.

A backend reads a snapshot of the job and of the attempts this bot held, asks
`decide_report`, and writes the outcome in the same transaction. Keeping the rules here
keeps SQLite and PostgreSQL in agreement and lets them be tested without a database.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from coordinator.store.base import ReportInput, ReportOutcome, RetryDelay

# Why a job failed for good when its attempts ran out without a report, the same on
# every backend (a job's `error`).
LEASE_EXPIRED = "lease expired"
BOT_LEASE_EXPIRED = "bot lease expired"
INSTANCE_REPLACED = "bot instance replaced"
BOT_DEREGISTERED = "bot deregistered"

ACTIVE_STATES = frozenset({"queued", "running"})


class Effect(enum.Enum):
    NONE = "none"  # rejected, or a repeat of a report already applied
    SUCCEED = "succeed"  # the job succeeds with this report's result
    RETRY = "retry"  # the job is queued again after a delay
    FAIL = "fail"  # the job fails for good


@dataclass(frozen=True, slots=True)
class JobSnapshot:
    state: str
    attempt: int  # latest attempt number
    bot_id: str | None  # holder of the latest attempt
    attempt_base: int  # attempt number at which the current budget began
    max_attempts: int
    result_attempt: int | None  # attempt whose complete made the job succeed


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: ReportOutcome
    effect: Effect = Effect.NONE
    attempt: int | None = None  # the attempt the report is about, once resolved
    retry_delay_s: float = 0.0


def attempts_left(job: JobSnapshot) -> bool:
    return job.attempt - job.attempt_base < job.max_attempts


def decide_report(
    job: JobSnapshot | None,
    held: Mapping[int, str | None],
    bot_id: str,
    report: ReportInput,
    retry_delay: RetryDelay,
) -> Decision:
    """Apply PROTOCOL.md's report rules.

    `held` maps each attempt of this job that was handed to this bot to its outcome
    (None while live). A report naming an attempt this bot never held is CONFLICT: the
    job was handed to it, but that fencing token is not its own.
    """
    if job is None:
        return Decision(ReportOutcome.NOT_FOUND)
    if not held:
        return Decision(ReportOutcome.FORBIDDEN)
    attempt = report.attempt if report.attempt is not None else max(held)
    if attempt not in held:
        return Decision(ReportOutcome.CONFLICT, attempt=attempt)
    if report.action == "complete":
        if job.state in ACTIVE_STATES:
            return Decision(ReportOutcome.ACCEPTED, Effect.SUCCEED, attempt)
        if job.state == "succeeded" and job.result_attempt == attempt:
            return Decision(ReportOutcome.ACCEPTED, attempt=attempt)
        return Decision(ReportOutcome.CONFLICT, attempt=attempt)
    if report.action != "fail":
        raise ValueError(f"unknown report action {report.action!r} (complete or fail)")
    holds_lease = job.state == "running" and job.bot_id == bot_id and job.attempt == attempt
    if holds_lease:
        if report.retryable and attempts_left(job):
            if report.retry_after_ms is not None:
                delay_s = max(0, report.retry_after_ms) / 1000.0
            else:
                delay_s = max(0.0, retry_delay(job.attempt - job.attempt_base))
            return Decision(ReportOutcome.ACCEPTED, Effect.RETRY, attempt, delay_s)
        return Decision(ReportOutcome.ACCEPTED, Effect.FAIL, attempt)
    if held[attempt] == "failed":
        return Decision(ReportOutcome.ACCEPTED, attempt=attempt)
    return Decision(ReportOutcome.CONFLICT, attempt=attempt)


_COMMAND_DONE: Mapping[str, frozenset[str]] = {
    "drain": frozenset({"DRAINING", "SHUTDOWN"}),
    "quarantine": frozenset({"QUARANTINED"}),
}


def command_took_effect(command: str, lifecycle: str | None) -> bool:
    """Whether the lifecycle a bot reports shows that `command` took hold.

    drain: DRAINING or SHUTDOWN; quarantine: QUARANTINED; release: any reported
    state but QUARANTINED. A bot that reports no state has not shown anything yet.
    """
    if lifecycle is None:
        return False
    state = lifecycle.upper()
    if command == "release":
        return state != "QUARANTINED"
    return state in _COMMAND_DONE.get(command, frozenset())


def claims_withheld(quarantined: bool, lifecycle: str | None) -> bool:
    """Whether a claim of this bot gets nothing: an operator's quarantine is in force
    (the command was given, pending or delivered, and no `release` since), or the bot's
    last heartbeat reported it QUARANTINED (by command or by itself)."""
    return quarantined or (lifecycle is not None and lifecycle.upper() == "QUARANTINED")
