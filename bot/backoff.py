"""Exponential backoff with full jitter: a pure function, and a counter that keeps the streak."""

from __future__ import annotations

import random


def backoff_ms(attempt: int, min_ms: float, max_ms: float, rng: random.Random) -> float:
    """The wait before retry number `attempt` (0 for the first retry).

    Full jitter: uniform between `min_ms` and the exponential ceiling
    `min_ms * 2**attempt`, itself capped at `max_ms`. Spreading retries over the
    whole window keeps a fleet of bots from coming back in step.
    """
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    low = max(0.0, min(min_ms, max_ms))
    ceiling = min(float(max_ms), low * 2.0 ** min(attempt, 62))
    return rng.uniform(low, max(low, ceiling))


class Backoff:
    """Consecutive failures (or empty answers) and the wait each one earns."""

    def __init__(self, min_ms: float, max_ms: float, rng: random.Random) -> None:
        self.min_ms = min_ms
        self.max_ms = max_ms
        self._rng = rng
        self.attempt = 0

    def next_s(self) -> float:
        delay = backoff_ms(self.attempt, self.min_ms, self.max_ms, self._rng) / 1000.0
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
