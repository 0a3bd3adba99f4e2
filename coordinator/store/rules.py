"""Pure decisions shared by every store backend: what a report does, who may claim what,
what an operator may ask of a bot, and when a command took hold.

A backend reads rows, asks these functions, and writes what they decided in the same
transaction. Keeping the rules here keeps SQLite and PostgreSQL in agreement and lets
them be tested without a database.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from coordinator.store.base import RetryDelay
from coordinator.store.records import (
    AssignmentRecord,
    BotUpdate,
    ClaimInput,
    Registration,
    ReportInput,
    ReportOutcome,
)

# Why a job failed for good when its attempts ran out without a report, the same on
# every backend (a job's `error`).
LEASE_EXPIRED = "lease expired"
BOT_LEASE_EXPIRED = "bot lease expired"
INSTANCE_REPLACED = "bot instance replaced"
BOT_DEREGISTERED = "bot deregistered"
# The outcome of the attempts a revocation ended: their reports are stale.
REVOKED = "revoked"
# A fail report's error when the bot gave none (a job's `error` is never empty once failed).
NO_ERROR_TEXT = "failed (the bot gave no error text)"

ACTIVE_STATES = frozenset({"queued", "running"})
COMMANDS = frozenset({"drain", "quarantine", "release"})
ASSIGNMENT_FIELDS = frozenset({"operations", "max_concurrency", "paused"})


class Effect(enum.Enum):
    NONE = "none"  # rejected, or a repeat of a report already applied
    SUCCEED = "succeed"  # the job succeeds with this report's result
    RETRY = "retry"  # the job is queued again after a delay
    FAIL = "fail"  # the job fails for good


# JobSnapshot and Decision are built for every report of a batch: not frozen, because a
# frozen dataclass's __init__ costs several times a plain one's. Neither is changed.
@dataclass(slots=True)
class JobSnapshot:
    state: str
    attempt: int  # latest attempt number
    bot_id: str | None  # holder of the latest attempt
    attempt_base: int  # attempt number at which the current budget began
    max_attempts: int
    result_attempt: int | None  # attempt whose complete made the job succeed

    @classmethod
    def of(cls, row: Any) -> JobSnapshot:
        """From a job row of either backend (both index columns by name)."""
        return cls(
            state=row["state"],
            attempt=row["attempt"],
            bot_id=row["bot_id"],
            attempt_base=row["attempt_base"],
            max_attempts=row["max_attempts"],
            result_attempt=row["result_attempt"],
        )

    def moved_to(self, state: str, result_attempt: int | None = None) -> JobSnapshot:
        """This job in `state` (a succeeded one with its `result_attempt`); built directly,
        as `dataclasses.replace` costs several times as much and runs for every report."""
        return JobSnapshot(
            state,
            self.attempt,
            self.bot_id,
            self.attempt_base,
            self.max_attempts,
            self.result_attempt if result_attempt is None else result_attempt,
        )

    @property
    def live_attempt(self) -> int | None:
        """The attempt whose lease is live: a job runs exactly while its latest attempt
        has not ended (every write that moves a job out of `running` ends it)."""
        return self.attempt if self.state == "running" else None


@dataclass(slots=True)
class Decision:
    outcome: ReportOutcome
    effect: Effect = Effect.NONE
    attempt: int | None = None  # the attempt the report is about, once resolved
    retry_delay_s: float = 0.0


def attempts_left(job: JobSnapshot) -> bool:
    return job.attempt - job.attempt_base < job.max_attempts


def holds_lease(job: JobSnapshot, bot_id: str, attempt: int) -> bool:
    """Whether `bot_id` holds the live lease of `attempt` (a fail or progress may act)."""
    return job.state == "running" and job.bot_id == bot_id and job.attempt == attempt


def refusal(found: bool, handed: bool) -> ReportOutcome:
    """Why a report or progress of a bot was not applied: the job is unknown, was never
    handed to this bot, or this bot's attempt is over."""
    if not found:
        return ReportOutcome.NOT_FOUND
    return ReportOutcome.CONFLICT if handed else ReportOutcome.FORBIDDEN


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
    job was handed to it, but that fencing token is not its own. So is every report
    of an attempt a revocation ended, or of a bot revoked now (its attempts all read
    `revoked`): a revoked bot's results are not trusted.
    """
    if job is None or not held:
        return Decision(refusal(job is not None, False))
    attempt = report.attempt if report.attempt is not None else max(held)
    if attempt not in held or held[attempt] == REVOKED:
        return Decision(ReportOutcome.CONFLICT, attempt=attempt)
    if report.action == "complete":
        if job.state in ACTIVE_STATES:
            return Decision(ReportOutcome.ACCEPTED, Effect.SUCCEED, attempt)
        if job.state == "succeeded" and job.result_attempt == attempt:
            return Decision(ReportOutcome.ACCEPTED, attempt=attempt)
        return Decision(ReportOutcome.CONFLICT, attempt=attempt)
    if report.action != "fail":
        raise ValueError(f"unknown report action {report.action!r} (complete or fail)")
    if holds_lease(job, bot_id, attempt):
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


# ---------------------------------------------------------------- claims


@dataclass(frozen=True, slots=True)
class Claimant:
    """The bot row a claim reads: what it is assigned and whether it may take work."""

    operations: Collection[str]
    paused: bool
    quarantined: bool
    lifecycle: str | None


def claims_withheld(quarantined: bool, lifecycle: str | None) -> bool:
    """Whether a claim of this bot gets nothing: an operator's quarantine is in force
    (the command was given, pending or delivered, and no `release` since), or the bot's
    last heartbeat reported it QUARANTINED (by command or by itself)."""
    return quarantined or (lifecycle is not None and lifecycle.upper() == "QUARANTINED")


def claimable_operations(bot: Claimant, claim: ClaimInput) -> list[str]:
    """The operations a claim takes jobs for (the ones asked for that the assignment
    holds, in the order asked); empty when it gets nothing. How many it may take is
    max_concurrency less the bot's running jobs, counted by the claim statement itself
    so that concurrent claims of one bot cannot both see the same free slots."""
    if bot.paused or claim.limit <= 0 or claims_withheld(bot.quarantined, bot.lifecycle):
        return []
    return [op for op in dict.fromkeys(claim.operations) if op in bot.operations]


def holding_cap(max_concurrency: int, prefetch: int) -> int:
    """How many jobs a bot may hold at once after a claim: its `max_concurrency`, plus
    the jobs it asked to prefetch (held unstarted in its buffer). A bot given no slots
    (max_concurrency 0) holds nothing, prefetch or not."""
    if max_concurrency <= 0:
        return 0
    return max_concurrency + max(0, prefetch)


def answers_repeat(claim: ClaimInput, seen: bool) -> bool:
    """Whether a claim is the repeat of one whose answer was lost (or a late copy of
    one): its `claim_id` already handed the bot jobs (`seen`). It gets back those still
    running under the bot and claims nothing new, so a retry neither strands them nor
    counts them twice against max_concurrency, and a copy arriving after its jobs ended
    cannot hand out new jobs the bot is no longer listening for."""
    return claim.claim_id is not None and seen


# ---------------------------------------------------------------- bots


def max_concurrency_of(registration: Registration) -> int:
    """The bot's own constraint when it is a positive integer, else the server's default."""
    wanted = registration.constraints.get("max_concurrency")
    if isinstance(wanted, int) and not isinstance(wanted, bool) and wanted >= 1:
        return wanted
    return registration.default_max_concurrency


def check_bot_update(update: BotUpdate) -> None:
    """ValueError for an assignment or command no bot could follow."""
    if update.command is not None and update.command not in COMMANDS:
        raise ValueError(f"unknown bot command {update.command!r} (drain, quarantine or release)")
    if update.max_concurrency is not None and update.max_concurrency < 0:
        raise ValueError("max_concurrency must not be negative")
    unknown = sorted(update.follow_bot - ASSIGNMENT_FIELDS)
    if unknown:
        raise ValueError(f"unknown assignment field {unknown[0]!r} to hand back")
    given = {
        name
        for name, value in (
            ("operations", update.operations),
            ("max_concurrency", update.max_concurrency),
            ("paused", update.paused),
        )
        if value is not None
    }
    both = sorted(given & update.follow_bot)
    if both:
        raise ValueError(f"{both[0]} is both given and handed back to the bot")


@dataclass(frozen=True, slots=True)
class OperatorChoices:
    """What an operator chose of a bot's assignment; None follows what the bot registers
    with. A bot never asks to be paused, so `paused` False is also the hand-back."""

    operations: tuple[str, ...] | None = None
    max_concurrency: int | None = None
    paused: bool = False


def choices_after(current: OperatorChoices, update: BotUpdate) -> OperatorChoices:
    """The operator's choices once `update` is in: a field given is chosen, a field
    handed back follows the bot again, and any other keeps the choice in force, so a
    re-registration never undoes an operator's change."""
    back = update.follow_bot
    operations = current.operations
    if "operations" in back:
        operations = None
    elif update.operations is not None:
        operations = tuple(update.operations)
    max_concurrency = current.max_concurrency
    if "max_concurrency" in back:
        max_concurrency = None
    elif update.max_concurrency is not None:
        max_concurrency = update.max_concurrency
    paused = current.paused
    if "paused" in back:
        paused = False
    elif update.paused is not None:
        paused = update.paused
    return OperatorChoices(operations, max_concurrency, paused)


def assignment_of(
    operations: Sequence[str], max_concurrency: int, chosen: OperatorChoices
) -> AssignmentRecord:
    """The assignment in force: each field the operator chose, else what the bot asks
    (its capabilities and its concurrency)."""
    return AssignmentRecord(
        operations=chosen.operations if chosen.operations is not None else tuple(operations),
        max_concurrency=(
            chosen.max_concurrency if chosen.max_concurrency is not None else max_concurrency
        ),
        paused=chosen.paused,
    )


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


def after_heartbeat(
    reported: str | None, stored: str | None, pending: str | None
) -> tuple[str | None, str | None]:
    """(lifecycle, pending command) once a heartbeat is in: a bot that reports no state
    keeps the last one, and a command is dropped once that state shows it took hold."""
    lifecycle = reported if reported is not None else stored
    if pending is not None and command_took_effect(pending, lifecycle):
        pending = None
    return lifecycle, pending
