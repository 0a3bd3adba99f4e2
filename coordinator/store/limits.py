"""Fleet-wide limits: what they are, and the arithmetic of a claim under them.

Both backends read the limits and the running counts inside the claim's
transaction; this module decides, from those numbers alone, which candidate jobs a
claim may start, so the rule is written once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

OP_PREFIX = "op:"  # a limit named op:OP covers every job of OP
KEY_SEPARATOR = ","


@dataclass(frozen=True, slots=True)
class LimitSpec:
    """A limit as set: no field set means that cap is off."""

    name: str
    max_running: int | None = None
    per_second: float | None = None
    burst: int = 1


@dataclass(frozen=True, slots=True)
class LimitRecord:
    name: str
    max_running: int | None
    per_second: float | None
    burst: int
    running: int  # jobs under it running now
    tokens: float  # starts the bucket allows now (burst when there is no rate)


@dataclass(frozen=True, slots=True)
class LimitState:
    """A limit's row as stored: the bucket holds `tokens` at `refilled_at_s`."""

    name: str
    max_running: int | None
    per_second: float | None
    burst: int
    tokens: float
    refilled_at_s: float


@dataclass(frozen=True, slots=True)
class Candidate:
    """A job a claim could start, and the limits it would count against."""

    key: int | str  # how the backend names the row (seq or id)
    priority: int
    seq: int
    limits: tuple[str, ...]


def limit_key(names: Iterable[str]) -> str | None:
    """The stored form of a job's limits: sorted, each once; None for none."""
    unique = sorted(set(names))
    return KEY_SEPARATOR.join(unique) if unique else None


def key_names(key: str | None) -> tuple[str, ...]:
    return tuple(key.split(KEY_SEPARATOR)) if key else ()


def op_limit(op: str) -> str:
    return OP_PREFIX + op


def tokens_now(state: LimitState, now_s: float) -> float:
    """The bucket's level now: refilled at per_second since refilled_at, up to burst."""
    if state.per_second is None:
        return float(state.burst)
    elapsed = max(0.0, now_s - state.refilled_at_s)
    return min(float(state.burst), state.tokens + elapsed * state.per_second)


def allowance(state: LimitState, running: int, now_s: float) -> int:
    """How many more jobs under this limit a claim may start now."""
    room = math.inf if state.max_running is None else state.max_running - running
    if state.per_second is not None:
        # A hair of slack: 0.9999999 tokens from float rounding is a whole start.
        room = min(room, math.floor(tokens_now(state, now_s) + 1e-9))
    return int(max(0, min(room, 2**31 - 1)))


def running_by_limit(
    states: Mapping[str, LimitState],
    running_by_key: Iterable[tuple[str, int]],
    running_by_op: Iterable[tuple[str, int]],
) -> dict[str, int]:
    """Jobs running under each limit, from counts per limit_key and per operation."""
    counts = dict.fromkeys(states, 0)
    for key, n in running_by_key:
        for name in key_names(key):
            if name in counts:
                counts[name] += n
    for op, n in running_by_op:
        name = op_limit(op)
        if name in counts:
            counts[name] += n
    return counts


def limits_of(op: str, key: str | None, states: Mapping[str, LimitState]) -> tuple[str, ...]:
    """The limits (that exist) a job of `op` naming `key` counts against."""
    names = [name for name in key_names(key) if name in states]
    if op_limit(op) in states:
        names.append(op_limit(op))
    return tuple(names)


def choose(candidates: Sequence[Candidate], room: int, left: dict[str, int]) -> list[Candidate]:
    """The best candidates (priority, then FIFO) that fit `room` and every limit's
    allowance; `left` is spent as jobs are chosen."""
    chosen: list[Candidate] = []
    for candidate in sorted(candidates, key=lambda c: (-c.priority, c.seq)):
        if len(chosen) >= room:
            break
        if all(left.get(name, 0) > 0 for name in candidate.limits):
            for name in candidate.limits:
                left[name] -= 1
            chosen.append(candidate)
    return chosen


def spent(chosen: Sequence[Candidate]) -> dict[str, int]:
    """Starts per limit among the chosen jobs."""
    counts: dict[str, int] = {}
    for candidate in chosen:
        for name in candidate.limits:
            counts[name] = counts.get(name, 0) + 1
    return counts


def freed_operations(limited: Mapping[str, str], changes: Iterable[Any]) -> list[str]:
    """The operations of the jobs under a limit (`limited`: id -> op) that these report
    changes end: their places free up, so claims waiting for that operation must look
    again. A job queued again wakes its waiters anyway."""
    return [
        limited[change.job_id]
        for change in changes
        if change.job_id in limited and change.read_state == "running" and change.state != "queued"
    ]
