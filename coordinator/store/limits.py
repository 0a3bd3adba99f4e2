"""Fleet-wide limits: what they are, and the arithmetic of a claim under them.

Both backends read the limits and the running counts inside the claim's
transaction; this module decides, from those numbers alone, which candidate jobs a
claim may start, so the rule is written once.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

OP_PREFIX = "op:"  # a limit named op:OP covers every job of OP
KEY_SEPARATOR = ","
# Starts are counted per window of this length; the rate is read over the last one.
START_WINDOW_S = 10.0


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
    starts_per_second: float = 0.0  # measured over the last START_WINDOW_S

    def held_back(self, queued: int) -> int:
        """Of `queued` jobs ready to run under it, how many it keeps from starting now."""
        return max(0, queued - room(self.max_running, self.per_second, self.running, self.tokens))


@dataclass(frozen=True, slots=True)
class StartWindow:
    """Starts counted under a limit: `starts` in the window that began at `at_s`,
    `previous` in the one before it."""

    at_s: float = 0.0
    starts: int = 0
    previous: int = 0

    def rolled(self, now_s: float) -> StartWindow:
        """The same counts as of the window holding `now_s`."""
        current = math.floor(now_s / START_WINDOW_S) * START_WINDOW_S
        if current <= self.at_s:
            return self
        if current - self.at_s < 2 * START_WINDOW_S - 1e-9:
            return StartWindow(current, 0, self.starts)
        return StartWindow(current, 0, 0)

    def counted(self, now_s: float, starts: int) -> StartWindow:
        rolled = self.rolled(now_s)
        return StartWindow(rolled.at_s, rolled.starts + starts, rolled.previous)

    def rate(self, now_s: float) -> float:
        """Starts per second over the last window: the part of the previous window that
        still lies in it is taken as evenly spread (a sliding-window estimate)."""
        rolled = self.rolled(now_s)
        into = min(1.0, max(0.0, (now_s - rolled.at_s) / START_WINDOW_S))
        return (rolled.previous * (1.0 - into) + rolled.starts) / START_WINDOW_S


@dataclass(frozen=True, slots=True)
class LimitState:
    """A limit's row as stored: the bucket holds `tokens` at `refilled_at_s`."""

    name: str
    max_running: int | None
    per_second: float | None
    burst: int
    tokens: float
    refilled_at_s: float
    window: StartWindow = StartWindow()


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
    return room(state.max_running, state.per_second, running, tokens_now(state, now_s))


def room(max_running: int | None, per_second: float | None, running: int, tokens: float) -> int:
    """How many more jobs a limit lets start, with `running` under it and its bucket
    at `tokens`."""
    places = math.inf if max_running is None else max_running - running
    if per_second is not None:
        # A hair of slack: 0.9999999 tokens from float rounding is a whole start.
        places = min(places, math.floor(tokens + 1e-9))
    return int(max(0, min(places, 2**31 - 1)))


def record(state: LimitState, running: int, now_s: float) -> LimitRecord:
    """A limit as listed: its caps, its jobs running, its bucket and start rate now."""
    return LimitRecord(
        state.name, state.max_running, state.per_second, state.burst, running,
        tokens_now(state, now_s), state.window.rate(now_s),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Started:
    """What a claim writes back to a limit it started jobs under."""

    name: str
    tokens: float
    refilled_at_s: float
    window: StartWindow


def started(state: LimitState, starts: int, now_s: float) -> Started:
    """`state` after `starts` more jobs started under it now: its bucket spent (when it
    has a rate) and the starts counted."""
    if state.per_second is None:
        tokens, refilled_at_s = state.tokens, state.refilled_at_s
    else:
        tokens, refilled_at_s = tokens_now(state, now_s) - starts, now_s
    return Started(state.name, tokens, refilled_at_s, state.window.counted(now_s, starts))


def token_wait(
    states: Mapping[str, LimitState], running: Mapping[str, int], names: Sequence[str], now_s: float
) -> float | None:
    """Seconds until a job under `names` may start when only its rate limits hold it back
    (their buckets lack a whole token); None when it may start now, or when a limit
    at max_running holds it (a place freed wakes the claims waiting for it)."""
    wait = 0.0
    for name in names:
        state = states[name]
        if state.max_running is not None and running[name] >= state.max_running:
            return None
        if state.per_second is not None:
            tokens = tokens_now(state, now_s)
            if tokens + 1e-9 < 1:
                wait = max(wait, (1 - tokens) / state.per_second)
    return wait or None


def soonest_token(
    states: Mapping[str, LimitState],
    running: Mapping[str, int],
    groups: Iterable[tuple[str, str | None]],
    now_s: float,
) -> float | None:
    """Of the (op, limit_key) groups of claimable jobs, the soonest `token_wait`."""
    waits = [token_wait(states, running, limits_of(op, key, states), now_s) for op, key in groups]
    found = [wait for wait in waits if wait is not None]
    return min(found) if found else None


def count_by_limit(
    states: Mapping[str, LimitState],
    by_key: Iterable[tuple[str, int]],
    by_op: Iterable[tuple[str, int]],
) -> dict[str, int]:
    """Jobs (running, or queued) under each limit, from counts per limit_key and per
    operation."""
    counts = dict.fromkeys(states, 0)
    for key, n in by_key:
        for name in key_names(key):
            if name in counts:
                counts[name] += n
    for op, n in by_op:
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


def freed_by_reports(
    limited: Mapping[str, tuple[str, str | None]], changes: Iterable[Any]
) -> list[tuple[str, str | None]]:
    """The (op, limit_key) of the jobs under a limit (`limited`: by id) that these report
    changes take out of `running`: each frees a place under its limits. One queued again
    under op: limits alone wakes a claim for its operation anyway, as a claimable job."""
    freed = []
    for change in changes:
        found = limited.get(change.job_id)
        if found is None or change.read_state != "running":
            continue
        if change.state != "queued" or found[1] is not None:
            freed.append(found)
    return freed


def is_limited(op: str, limit_key: str | None, names: Collection[str]) -> bool:
    """Whether a job of `op` naming `limit_key` falls under any limit of `names`."""
    return limit_key is not None or op_limit(op) in names


def operations_to_wake(freed: AbstractSet[str], groups: Iterable[tuple[str, str]]) -> list[str]:
    """Of the (op, limit_key) groups of queued jobs, the operations with jobs under one
    of the `freed` named limits: their waiting claims may take them now."""
    return sorted({op for op, key in groups if not freed.isdisjoint(key_names(key))})
