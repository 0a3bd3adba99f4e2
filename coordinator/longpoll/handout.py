"""Handing a counted notice of jobs to the waiting claims: whom to wake, and when to stop.

Pure bookkeeping: the waiters keep the hand-outs in progress and set the events.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple, TypeVar

C = TypeVar("C")


class Handout(NamedTuple):
    """Where a counted notice of jobs stands (a tuple: made on every wake and answer)."""

    operations: tuple[str, ...]
    remaining: int  # jobs of the notice not known to be claimed yet
    covered: int = 0  # the limits of the woken claims that have not claimed yet

    @property
    def uncovered(self) -> bool:
        """Whether some of the jobs have no woken claim counted on to take them."""
        return self.covered < self.remaining


def wake(handout: Handout, idle: Iterable[tuple[C, int]]) -> tuple[Handout, list[C]]:
    """The idle claims to wake and the hand-out counting them: from `idle` (each claim
    with its limit, longest waiting first), until their limits cover the jobs.

    `idle` is read no further than needed, so every claim read from it is woken: the
    caller may mark each one as tried while it hands it over.
    """
    operations, remaining, covered = handout
    woken: list[C] = []
    if covered >= remaining:
        return handout, woken
    for claim, limit in idle:
        woken.append(claim)
        covered += limit
        if covered >= remaining:
            break
    return Handout(operations, remaining, covered), woken


def answered(handout: Handout, limit: int, claimed: int, jobs_left: bool) -> Handout:
    """The hand-out once a claim it woke (with `limit`) got `claimed` jobs.

    `jobs_left`: whether jobs may remain (after an empty claim, whether one is due);
    an empty claim with none left means another took them, so the hand-out ends.
    """
    remaining = 0 if claimed == 0 and not jobs_left else handout.remaining - claimed
    return Handout(handout.operations, remaining, handout.covered - limit)
