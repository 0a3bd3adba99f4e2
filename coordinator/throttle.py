"""Failed authentications per client address: past a limit in a window, that address
is refused (429) until the window clears.

Per process: each coordinator counts what it saw itself, so with N processes behind a
load balancer an address may fail up to N times the limit before every one refuses it.
Only this process's memory is used, bounded by `max_addresses` (the least recently
failed address is forgotten first).
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque

from botfleet.clock import Clock

DEFAULT_LIMIT = 20
DEFAULT_WINDOW_S = 60.0
DEFAULT_MAX_ADDRESSES = 10_000


class FailedAuthThrottle:
    def __init__(
        self,
        clock: Clock,
        limit: int = DEFAULT_LIMIT,
        window_s: float = DEFAULT_WINDOW_S,
        max_addresses: int = DEFAULT_MAX_ADDRESSES,
    ) -> None:
        if limit < 1 or window_s <= 0 or max_addresses < 1:
            raise ValueError("the failed-authentication throttle needs positive settings")
        self._clock = clock
        self._limit = limit
        self._window_s = window_s
        self._max_addresses = max_addresses
        # address -> when its latest failures happened (monotonic), the oldest first; only
        # the last `limit + 1` matter.
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def window_s(self) -> float:
        return self._window_s

    def retry_after_s(self, address: str) -> int | None:
        """Whole seconds until `address` may authenticate again; None: it may now."""
        times = self._failures.get(address)
        if times is None or len(times) <= self._limit:
            return None
        # More than `limit` failures are on record: blocked until the oldest of them
        # leaves the window (then at most `limit` remain in it).
        left = times[0] + self._window_s - self._clock.monotonic()
        if left <= 0:
            return None
        return max(1, math.ceil(left))

    def failed(self, address: str) -> None:
        times = self._failures.pop(address, None)
        if times is None:
            times = deque(maxlen=self._limit + 1)
            while len(self._failures) >= self._max_addresses:
                self._failures.popitem(last=False)
        times.append(self._clock.monotonic())
        self._failures[address] = times  # the most recent failure goes last
