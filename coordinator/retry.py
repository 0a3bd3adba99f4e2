"""The retry policy: a pure decision of how long a failed job waits before its next attempt.

Exponential backoff with full jitter (as in the AWS architecture blog and Dramatiq's
`compute_backoff`): attempt `n` failed, so wait a uniform random time in
`[0, min(cap, base * 2 ** (n - 1))]`. Jitter spreads a burst of failures so the
retries do not arrive as another burst. The random source is injected, so the policy
is tested without a clock and replayed deterministically.
"""

from __future__ import annotations

import random

from coordinator.store.base import RetryDelay


def backoff_ceiling(attempt: int, base_s: float, cap_s: float) -> float:
    """The upper bound of the wait after attempt `attempt` (1-based) failed."""
    if attempt < 1:
        return base_s if base_s < cap_s else cap_s
    # 2 ** 64 already exceeds any sensible cap; bounding the exponent avoids huge ints.
    exponent = min(attempt - 1, 64)
    return min(cap_s, base_s * float(2**exponent))


def exponential_backoff(
    base_s: float = 1.0, cap_s: float = 300.0, rng: random.Random | None = None
) -> RetryDelay:
    """A `RetryDelay`: full jitter over `[0, min(cap_s, base_s * 2 ** (attempt - 1))]`."""
    if base_s < 0 or cap_s < 0:
        raise ValueError("base_s and cap_s must not be negative")
    source = rng if rng is not None else random.Random()

    def delay(attempt: int) -> float:
        return source.uniform(0.0, backoff_ceiling(attempt, base_s, cap_s))

    return delay
