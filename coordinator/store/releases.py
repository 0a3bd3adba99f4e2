"""Jobs a bot gives back unstarted (feature `prefetch`), decided once for every backend.

A bot that prefetched a job and will not start it (its hold time passed, the bot
drains) releases it: the job is queued again at once, uncharged (attempt_base goes up
with the attempt, as for a lost claim answer), and the attempt it was handed out under
ends as `unstarted`, which the job's attempts list leaves out since nothing ran. The
attempt number, the fence of reports, keeps rising.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# The outcome of an attempt given back before it began; not shown among the attempts.
UNSTARTED = "unstarted"


@dataclass(frozen=True, slots=True)
class ReleaseInput:
    job_id: str
    attempt: int  # the attempt the job was handed out under


class ReleaseOutcome(enum.Enum):
    RELEASED = "released"  # queued again (or was already, by this same release)
    CONFLICT = "conflict"  # the bot does not hold that attempt (ran out, finished, another's)
    NOT_FOUND = "not_found"


@dataclass(frozen=True, slots=True)
class HeldJob:
    """What a release reads of a job: who holds which attempt, in which state."""

    op: str
    state: str
    attempt: int
    bot_id: str | None


@dataclass(slots=True)
class ReleaseDecision:
    outcomes: list[ReleaseOutcome]
    to_release: list[tuple[str, int]]  # (job_id, attempt) to queue again, each once
    ops: list[str]  # one entry per job queued again (claims waiting for them wake)


def decide_releases(
    bot_id: str,
    items: Sequence[ReleaseInput],
    jobs: Mapping[str, HeldJob],
    released_before: set[tuple[str, int]],
) -> ReleaseDecision:
    """Each item's outcome, in order. `released_before`: (job, attempt) pairs of this
    bot already ended as unstarted, so a repeated release answers `released` again with
    no second effect; a pair repeated within the batch is released once."""
    decision = ReleaseDecision([], [], [])
    done: set[tuple[str, int]] = set()
    for item in items:
        key = (item.job_id, item.attempt)
        job = jobs.get(item.job_id)
        if job is None:
            outcome = ReleaseOutcome.NOT_FOUND
        elif key in released_before or key in done:
            outcome = ReleaseOutcome.RELEASED
        elif job.state == "running" and job.bot_id == bot_id and job.attempt == item.attempt:
            outcome = ReleaseOutcome.RELEASED
            done.add(key)
            decision.to_release.append(key)
            decision.ops.append(job.op)
        else:
            outcome = ReleaseOutcome.CONFLICT
        decision.outcomes.append(outcome)
    return decision
