"""When to try a request again: pure decisions, tested without a clock."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

SHED_STATUSES = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Connection errors back off exponentially with full jitter, up to a cap; a shed
    request (429/503) waits what `Retry-After` says, up to `max_retry_after_s`."""

    connect_retries: int = 5
    base_s: float = 0.2
    cap_s: float = 5.0
    shed_retries: int = 5
    max_retry_after_s: float = 30.0

    def backoff_s(self, retry: int, rng: random.Random) -> float:
        """The pause before retry number `retry` (1, 2, …) after a connection error."""
        ceiling = min(self.cap_s, self.base_s * 2 ** (retry - 1))
        return rng.uniform(0.0, ceiling)

    def retry_after_s(self, headers: Mapping[str, str]) -> float:
        """`Retry-After` in seconds (a missing or odd value means one second), capped."""
        try:
            seconds = float(headers.get("Retry-After", "1"))
        except ValueError:
            seconds = 1.0
        return min(max(seconds, 0.0), self.max_retry_after_s)


NO_RETRIES = RetryPolicy(connect_retries=0, shed_retries=0)
