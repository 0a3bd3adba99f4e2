"""Exponential backoff with full jitter, the retry delay that honours `Retry-After`, and
the budget of retries made at once.

The first two are pure functions (the randomness is passed in); `Backoff` only keeps
the streak.
"""

from __future__ import annotations

import random

from bot.errors import OverloadedError


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


def retry_delay_s(backoff_s: float, error: BaseException, cap_s: float | None = None) -> float:
    """The wait before trying again after `error`: the backoff, or longer when the
    coordinator shed load and said when to come back (`Retry-After`); at most `cap_s`
    (the heartbeat's interval: a lease runs out after a few missed heartbeats)."""
    delay = backoff_s
    if isinstance(error, OverloadedError) and error.retry_after_s is not None:
        delay = max(delay, error.retry_after_s)
    return delay if cap_s is None else min(delay, cap_s)


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

    def after(self, error: BaseException, cap_s: float | None = None) -> float:
        """The next wait of the streak, after `error` (see `retry_delay_s`)."""
        return retry_delay_s(self.next_s(), error, cap_s)

    def reset(self) -> None:
        self.attempt = 0


# Retries at once kept. Losses come in bursts even at a steady rate: at one call in four
# lost, a budget of 5 runs dry about once every 90 answered calls (each time a backoff of
# 0.5 s or more), one of 10 about once every 500; when most calls fail it runs dry all
# the same after those few retries.
RETRY_BUDGET_CAP = 10.0


class RetryBudget:
    """Retries made at once, earned by answered calls (a retry budget, as in Finagle).

    Each answered call earns `ratio` of a retry, up to `cap` kept; a retry at once spends
    one. On a network that loses a share of calls below `ratio`, every loss is retried at
    once; when most calls fail (an outage, a coordinator shedding load) the budget runs
    dry after `cap` retries and the caller backs off instead of adding to the load.
    """

    def __init__(self, ratio: float, cap: float = RETRY_BUDGET_CAP) -> None:
        if ratio < 0 or cap < 0:
            raise ValueError(f"ratio and cap must not be negative, got {ratio}, {cap}")
        self.ratio = ratio
        self.cap = cap
        self.tokens = cap

    def earn(self) -> None:
        """An answered call."""
        self.tokens = min(self.cap, self.tokens + self.ratio)

    def spend(self) -> bool:
        """Whether a retry may go out at once (it is then counted)."""
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True
