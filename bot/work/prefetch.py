"""How many jobs to claim beyond the free slots (feature `prefetch`): a pure decision.

A claim round trip costs the same for two jobs as for two hundred, so a bot that runs
short jobs claims more than its free slots and holds the rest in a local buffer
(`bot.work.held`). Only short jobs: a long job held behind busy slots would wait while
another bot idles (Celery's prefetch multiplier, its most filed complaint). So
`BOT_PREFETCH=auto` sizes each operation's buffer from how long its recent jobs took
and gives none to an operation with long or unknown jobs; a held job not started within
`BOT_PREFETCH_HOLD_MS` goes back to the queue (the buffer's business, not this one's).

`auto`, for an operation whose recent jobs were short (`is_short`):
- enough jobs to keep every slot busy over two claim round trips (the buffer is refilled
  when half empty, so it never runs dry while a claim is on its way), at least one per
  slot;
- no more than the bot starts within half the hold time, at the pace it started its
  latest jobs (a busy machine's bot holds fewer, rather than giving them back);
- at most `MAX_AUTO_PREFETCH`.
An operation is short when at least `MIN_SAMPLES` of its jobs finished here, the last
`LATEST` of them each took at most the short limit, the 90th percentile of the last
`WINDOW` too, and none of its jobs running now has taken longer. The short limit is
`SHORT_JOB_S` (100 ms), or a quarter of the hold time when that is less: one long job
makes the operation long at once, and it takes `LATEST` short ones to clear it.

A bot with no free slot refills its buffer (short operations only) when it is half
empty, sized by the slots whose jobs are short so far: with every slot held by a long
job, held jobs would only wait, so none are claimed.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from botfleet.protocol.messages import MAX_CLAIM_LIMIT

AUTO: Literal["auto"] = "auto"
Prefetch = int | Literal["auto"]  # BOT_PREFETCH: auto, 0 (never) or a fixed number of jobs

SHORT_JOB_S = 0.1
MIN_SAMPLES = 8
LATEST = 8
WINDOW = 32
MAX_AUTO_PREFETCH = 500
# Before any claim round trip is measured; a guess on the high side of a LAN's.
DEFAULT_ROUND_TRIP_S = 0.005
ROUND_TRIP_WEIGHT = 0.2  # of a new sample in the moving average
# A job's pace is never taken as faster than this: a handler that returns at once still
# costs the bot its bookkeeping.
MIN_JOB_S = 50e-6


class RecentDurations:
    """The latest durations of each operation's jobs (seconds, from start to end)."""

    def __init__(self, window: int = WINDOW) -> None:
        self._window = window
        self._by_op: dict[str, collections.deque[float]] = {}
        self._seen: dict[str, int] = {}  # jobs observed, by op: tells a verdict is stale

    def observe(self, op: str, seconds: float) -> None:
        kept = self._by_op.get(op)
        if kept is None:
            kept = self._by_op[op] = collections.deque(maxlen=self._window)
            self._seen[op] = 0
        kept.append(max(0.0, seconds))
        self._seen[op] += 1

    def of(self, op: str) -> Sequence[float]:
        return self._by_op.get(op, ())

    def seen(self, op: str) -> int:
        """How many jobs of `op` were observed in all."""
        return self._seen.get(op, 0)


@dataclass(frozen=True, slots=True)
class _Verdict:
    """What an operation's finished jobs say, as of `seen` of them."""

    seen: int
    short: bool  # its recent jobs were all short
    mean_s: float


class RecentStarts:
    """When the bot's latest jobs started: how fast it gets through jobs, all slots and
    all its own work (claims, reports) included, which is what drains a buffer."""

    def __init__(self, window: int = WINDOW) -> None:
        self._at: collections.deque[float] = collections.deque(maxlen=window)

    def observe(self, monotonic_s: float) -> None:
        self._at.append(monotonic_s)

    def interval_s(self) -> float | None:
        """The mean time between starts over the window; None until enough are known."""
        at = self._at
        if len(at) < MIN_SAMPLES:
            return None
        return (at[-1] - at[0]) / (len(at) - 1)


class RoundTrip:
    """A moving average of claim round trips answered without waiting for work."""

    def __init__(self) -> None:
        self._average_s: float | None = None

    def add(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        if self._average_s is None:
            self._average_s = seconds
        else:
            self._average_s += ROUND_TRIP_WEIGHT * (seconds - self._average_s)

    @property
    def seconds(self) -> float:
        return DEFAULT_ROUND_TRIP_S if self._average_s is None else self._average_s


@dataclass(frozen=True, slots=True)
class ClaimPlan:
    """One claim: for which operations, how many jobs, and how many the bot may hold
    beyond its slots once it is answered (`prefetch`; 0 with none held: a plain claim)."""

    operations: tuple[str, ...]
    limit: int
    prefetch: int = 0
    # False for a claim that prefetches: it does not wait for work (long-poll), so that
    # what it takes is decided on durations measured now, not when the wait began; and
    # a claim for every operation follows at once should it find nothing.
    may_wait: bool = True


class PrefetchPolicy:
    """Decides each claim from the free slots, the buffer and the operations' durations."""

    def __init__(
        self,
        setting: Prefetch,
        hold_s: float,
        durations: RecentDurations,
        round_trip: RoundTrip,
        running_longest_s: Callable[[str], float] = lambda op: 0.0,
        turning: Callable[[float], int] | None = None,
        starts: RecentStarts | None = None,
    ) -> None:
        self.setting = setting
        self.hold_s = hold_s
        self._durations = durations
        self.round_trip = round_trip  # of claims, measured by the claim loop
        self._running_longest_s = running_longest_s  # of an op's jobs running now
        # How many jobs running now have run no longer than the given seconds: the slots
        # that should free up soon (None: every slot counts).
        self._turning = turning
        self._starts = starts  # of every job, to pace the buffer (None: from durations)
        # Worked out once per job finished, not per claim: the claim loop asks at every
        # slot that frees up.
        self._verdicts: dict[str, _Verdict] = {}
        # Held jobs above which the buffer needs no refill: half its size when last worked
        # out, so that a full bot asked at every slot that frees up answers at once.
        self._refill_at = 0

    @property
    def short_limit_s(self) -> float:
        return min(SHORT_JOB_S, self.hold_s / 4)

    def _verdict(self, op: str) -> _Verdict:
        seen = self._durations.seen(op)
        verdict = self._verdicts.get(op)
        if verdict is not None and verdict.seen == seen:
            return verdict
        recent = self._durations.of(op)
        limit = self.short_limit_s
        short = (
            len(recent) >= MIN_SAMPLES  # else unknown: it may well be long
            and max(list(recent)[-LATEST:]) <= limit
            and _p90(recent) <= limit
        )
        mean_s = sum(recent) / len(recent) if recent else 0.0
        verdict = self._verdicts[op] = _Verdict(seen, short, mean_s)
        return verdict

    def is_short(self, op: str) -> bool:
        """Whether `op`'s recent jobs were all short (see the module's docstring)."""
        return self._verdict(op).short and self._running_longest_s(op) <= self.short_limit_s

    def target(self, op: str, capacity: int) -> int:
        """How many jobs of `op` the buffer should hold at most (0: none)."""
        if capacity <= 0:
            return 0
        if self.setting != AUTO:
            return min(int(self.setting), MAX_CLAIM_LIMIT - capacity)
        if not self.is_short(op):
            return 0
        # Seconds per job for the whole bot: measured between starts, else this op's
        # mean duration shared by the slots.
        measured = None if self._starts is None else self._starts.interval_s()
        pace_s = max(MIN_JOB_S / capacity, measured or self._verdict(op).mean_s / capacity)
        # (Rounded to a millionth first: a float a hair off a whole number is that number.)
        over_round_trips = math.ceil(round(2 * self.round_trip.seconds / pace_s, 6))
        within_hold = math.floor(round((self.hold_s / 2) / pace_s, 6))
        wanted = min(max(capacity, over_round_trips), within_hold, MAX_AUTO_PREFETCH)
        return max(0, min(wanted, MAX_CLAIM_LIMIT - capacity))

    def plan(
        self,
        operations: Sequence[str],
        *,
        free: int,
        capacity: int,
        held: int,
        batch_size: int,
        refill_allowed: bool = True,
        short_turn: bool = False,
    ) -> ClaimPlan | None:
        """The next claim, or None when there is nothing to claim for now.

        Free slots: a claim for every operation, the free slots and (when every operation
        is short: jobs of any of them may come) a buffer's worth more. When only some
        are short, such a plain claim takes turns (`short_turn`) with one for the short
        operations alone, the free slots and a buffer's worth. No free slot: a claim for
        the short operations only, to refill the buffer once it is half empty, sized by
        the slots whose jobs are short so far. A claim that prefetches does not wait for
        work; once one found nothing (`refill_allowed` False), the next claims are plain
        (and may wait) until one of them brought work."""
        if not operations:
            return None
        if free <= 0:
            return self._refill(operations, capacity, held, refill_allowed)
        slots = min(free, batch_size)
        target = 0
        if refill_allowed:
            targets = {op: self.target(op, capacity) for op in operations}
            target = min(targets.values())
            short = tuple(op for op in operations if targets[op] > 0)
            if not target and short and short_turn:
                target = min(targets[op] for op in short)
                operations = short
        extra = max(0, target - held)
        limit = min(MAX_CLAIM_LIMIT, slots + extra)
        return ClaimPlan(tuple(operations), limit, held + (limit - slots), may_wait=not extra)

    def _refill(
        self, operations: Sequence[str], capacity: int, held: int, refill_allowed: bool
    ) -> ClaimPlan | None:
        """No free slot: a claim to refill the buffer, for the short operations only."""
        if not refill_allowed or held > self._refill_at > 0:
            return None
        # Only the slots whose jobs are short so far will start held jobs soon: none, and
        # held jobs would only wait (and go back) while another bot may be idle.
        if self._turning is not None:
            capacity = min(capacity, self._turning(self.short_limit_s))
        targets = {op: self.target(op, capacity) for op in operations}
        short = tuple(op for op in operations if targets[op] > 0)
        if not short:
            self._refill_at = 0
            return None
        target = min(targets[op] for op in short)
        self._refill_at = target // 2
        if held > target // 2:
            return None
        return ClaimPlan(short, min(MAX_CLAIM_LIMIT, target - held), target, may_wait=False)


def _p90(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, (9 * len(ordered)) // 10)]
