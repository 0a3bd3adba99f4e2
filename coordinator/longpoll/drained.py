"""The claim hint: operations whose last claim in this process came back short.

It only chooses between claiming at once and reading first; the store gives the
answers, so forgetting the hint costs a transaction, never a job.
"""

from __future__ import annotations

from collections.abc import Sequence

# Bounds the set (operation names come from bots); forgetting it only makes claims try
# a transaction first again.
MAX_DRAINED_OPERATIONS = 1024


class DrainedOperations:
    """Operations a claim here found short, with no unclaimed jobs announced since."""

    __slots__ = ("_drained", "_notices")

    def __init__(self) -> None:
        self._drained: set[str] = set()
        self._notices = 0

    @property
    def notices(self) -> int:
        """Announcements of jobs no waiting claim was woken for, so far (taken before a
        claim, for `note_claim`: a claim that overlapped one leaves the hint)."""
        return self._notices

    def jobs_likely(self, operations: Sequence[str]) -> bool:
        """Whether a claim for these operations probably finds jobs: yes unless this
        process's last claim for each came back short."""
        drained = self._drained
        return not drained or any(op not in drained for op in operations)

    def note_claim(
        self, operations: Sequence[str], limit: int, claimed: int, notices_before: int
    ) -> None:
        """A claim made in the store got `claimed` of `limit` jobs. Full: more may be
        there. Short: the queue ran dry (or the bot's room was smaller), unless jobs
        were announced while it ran (`notices_before`: `notices` before it)."""
        if limit <= 0:
            return
        if claimed >= limit:
            if self._drained:
                self._drained.difference_update(operations)
        elif notices_before == self._notices:
            if len(self._drained) >= MAX_DRAINED_OPERATIONS:
                self._drained.clear()
            self._drained.update(operations)

    def jobs_unclaimed(self, operations: Sequence[str]) -> None:
        """Jobs came that the waiting claims may not take: a claim that comes now claims
        at once. Jobs the woken claims cover are not told here, so the one job of a
        one-at-a-time producer, taken by the claim its notice woke, costs no second
        claim transaction."""
        self._notices += 1
        if self._drained:
            self._drained.difference_update(operations)
