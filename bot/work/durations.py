"""How long jobs ran, by operation, in histogram buckets (exported as a Prometheus histogram).

Plain counts kept by the scheduler and read at scrape time, so running a job costs a
few additions and no metric-library call.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

# Seconds; from a trivial in-process handler to a long batch job.
BUCKETS_S: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
)  # fmt: skip


@dataclass(slots=True)
class OpDurations:
    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS_S) + 1))
    sum_s: float = 0.0

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """`(le, count)` pairs, the last being `+Inf`, as Prometheus wants them."""
        total, out = 0, []
        for bound, count in zip((*map(str, BUCKETS_S), "+Inf"), self.counts, strict=True):
            total += count
            out.append((bound, total))
        return out


class Durations:
    def __init__(self) -> None:
        self.by_op: dict[str, OpDurations] = {}

    def observe(self, op: str, seconds: float) -> None:
        entry = self.by_op.get(op)
        if entry is None:
            entry = self.by_op[op] = OpDurations()
        entry.counts[bisect.bisect_left(BUCKETS_S, seconds)] += 1
        entry.sum_s += seconds
