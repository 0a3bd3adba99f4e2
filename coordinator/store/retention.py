"""What the reaper's housekeeping may remove, decided once for every backend.

Finished jobs older than `finished_s`, offline bots silent for longer than `bots_s`,
and queued jobs past their `expires_at`. A backend asks `cutoffs` for the moments and
runs its SQL with them, at most `batch_size` rows of each kind per transaction, so a
large backlog never holds the write lock for long; the reaper repeats while a batch
came back full (`SweepOutcome.more`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

# The error of a queued job whose `expires_in_ms` ran out (a job's `error`).
EXPIRED = "expired"
FINISHED_STATES = ("succeeded", "failed", "cancelled")
DEFAULT_BATCH_SIZE = 1000
DEFAULT_RETAIN_S = 7 * 86_400.0


@dataclass(frozen=True, slots=True)
class Retention:
    """How long finished jobs and offline bots are kept; None keeps them for ever."""

    finished_s: float | None = DEFAULT_RETAIN_S
    bots_s: float | None = DEFAULT_RETAIN_S
    batch_size: int = DEFAULT_BATCH_SIZE

    def __post_init__(self) -> None:
        for name in ("finished_s", "bots_s"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative, got {value!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size!r}")


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """One sweep's moments: delete jobs finished before `finished_before`, forget
    offline bots last heard of before `bots_before` (None: keep them all)."""

    now: datetime
    finished_before: datetime | None
    bots_before: datetime | None
    limit: int


def cutoffs(retention: Retention, now: datetime) -> Cutoffs:
    return Cutoffs(
        now=now,
        finished_before=_before(now, retention.finished_s),
        bots_before=_before(now, retention.bots_s),
        limit=retention.batch_size,
    )


def _before(now: datetime, keep_s: float | None) -> datetime | None:
    return None if keep_s is None else now - timedelta(seconds=keep_s)


@dataclass(frozen=True, slots=True)
class SweepOutcome:
    """One batch of housekeeping: queued jobs ended `expired`, jobs deleted with their
    attempts, bots forgotten."""

    expired: tuple[str, ...] = ()
    jobs_deleted: int = 0
    bots_forgotten: int = 0
    more: bool = False  # some batch was full: there may be more to do right away

    def __bool__(self) -> bool:
        return bool(self.expired or self.jobs_deleted or self.bots_forgotten)


def sweep_outcome(
    limit: int, expired: list[str], jobs_deleted: int, bots_forgotten: int
) -> SweepOutcome:
    return SweepOutcome(
        expired=tuple(sorted(expired)),
        jobs_deleted=jobs_deleted,
        bots_forgotten=bots_forgotten,
        more=max(len(expired), jobs_deleted, bots_forgotten) >= limit,
    )
