"""When each job of `benchmarks/mixed.py` sat in a worker's buffer and when it ran, and
what that adds up to: the makespan, its lower bound, and how long a job waited in one
worker's buffer while another worker had a free slot.

All times are wall-clock seconds (`time.time()` and the coordinator's timestamps, one
machine, one clock). A worker is a botfleet bot or a Celery worker, each with `slots`
slots.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Interval = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Stay:
    """A job in one worker's buffer: taken from the queue (claimed, received) at `since`,
    started there or given back at `until`."""

    worker: str
    since: float
    until: float


@dataclass(frozen=True, slots=True)
class JobTrace:
    """One job: whether it is long, where and when it ran, and its stays in buffers (the
    last one ends when it started; an earlier one, when it went back to the queue)."""

    long: bool
    worker: str
    started: float
    ended: float
    stays: tuple[Stay, ...]


@dataclass(frozen=True, slots=True)
class Waits:
    """The longest time a job spent in a buffer while another worker had a free slot (of
    any job, and of a long one), and the longest time in a buffer at all."""

    while_free_s: float
    long_while_free_s: float
    in_buffer_s: float


def lower_bound(long_seconds: Sequence[float], total_slots: int, trivial_s: float) -> float:
    """The larger of the long jobs' work over all the slots and the longest job, plus the
    time the trivial jobs take on their own at full speed."""
    longest = max(long_seconds, default=0.0)
    return max(sum(long_seconds) / total_slots, longest) + trivial_s


def makespan(traces: Iterable[JobTrace], submitted_at: float) -> float:
    """From the first submission to the end of the last job."""
    return max((trace.ended for trace in traces), default=math.nan) - submitted_at


def merged(intervals: Iterable[Interval]) -> list[Interval]:
    """The union of some intervals, as sorted disjoint intervals."""
    union: list[Interval] = []
    for start, end in sorted(intervals):
        if union and start <= union[-1][1]:
            union[-1] = (union[-1][0], max(union[-1][1], end))
        else:
            union.append((start, end))
    return union


def free_intervals(
    runs: Sequence[Interval], slots: int, since: float, until: float
) -> list[Interval]:
    """When a worker ran fewer than `slots` jobs, between `since` and `until`."""
    # At one instant, an end before a start: a slot handed straight on is never free.
    events = sorted([(end, -1) for _, end in runs] + [(start, 1) for start, _ in runs])
    free: list[Interval] = []
    running = 0
    opened: float | None = since
    for moment, delta in events:
        was_free = running < slots
        running += delta
        if was_free and running >= slots and opened is not None:
            free.append((max(opened, since), min(moment, until)))
            opened = None
        elif not was_free and running < slots:
            opened = moment
    if opened is not None:
        free.append((max(opened, since), until))
    return [(start, end) for start, end in free if end > start]


def overlap(span: Interval, intervals: Sequence[Interval], ends: Sequence[float]) -> float:
    """How much of `span` the sorted disjoint `intervals` (whose `ends` are given) cover."""
    start, end = span
    covered = 0.0
    index = bisect.bisect_right(ends, start)
    while index < len(intervals) and intervals[index][0] < end:
        low, high = intervals[index]
        covered += max(0.0, min(high, end) - max(low, start))
        index += 1
    return covered


def free_elsewhere(
    traces: Sequence[JobTrace], slots: int, horizon: float
) -> dict[str, list[Interval]]:
    """For each worker, when some other worker had a free slot.

    A worker counts from the first job it took (before that it was starting up) until
    `horizon`, the end of the run: idle at the end, it had every slot free.
    """
    runs: dict[str, list[Interval]] = defaultdict(list)
    first_take: dict[str, float] = {}
    for trace in traces:
        runs[trace.worker].append((trace.started, trace.ended))
        for stay in trace.stays:
            first_take[stay.worker] = min(first_take.get(stay.worker, math.inf), stay.since)
    workers = set(runs) | set(first_take)
    free = {
        worker: free_intervals(runs[worker], slots, first_take.get(worker, horizon), horizon)
        for worker in workers
    }
    return {
        worker: merged(span for other in workers if other != worker for span in free[other])
        for worker in workers
    }


def buffer_waits(traces: Sequence[JobTrace], slots: int, horizon: float) -> Waits:
    """Per job, the time of its stays during which another worker had a free slot; the
    largest such time, over all jobs and over the long ones, and the longest stay."""
    elsewhere = free_elsewhere(traces, slots, horizon)
    ends = {worker: [end for _, end in spans] for worker, spans in elsewhere.items()}
    while_free = long_while_free = in_buffer = 0.0
    for trace in traces:
        waited = sum(
            overlap((stay.since, stay.until), elsewhere[stay.worker], ends[stay.worker])
            for stay in trace.stays
        )
        while_free = max(while_free, waited)
        if trace.long:
            long_while_free = max(long_while_free, waited)
        buffered = sum(max(0.0, stay.until - stay.since) for stay in trace.stays)
        in_buffer = max(in_buffer, buffered)
    return Waits(while_free, long_while_free, in_buffer)
