"""The failed-authentication throttle, with the fake clock."""

from __future__ import annotations

import pytest

from botfleet.clock import FakeClock
from coordinator.throttle import FailedAuthThrottle


def _fail(throttle: FailedAuthThrottle, address: str, times: int) -> None:
    for _ in range(times):
        throttle.failed(address)


def test_more_than_the_limit_within_the_window_blocks_until_it_clears() -> None:
    clock = FakeClock()
    throttle = FailedAuthThrottle(clock, limit=20, window_s=60)
    _fail(throttle, "10.0.0.1", 20)
    assert throttle.retry_after_s("10.0.0.1") is None  # 20 is the limit, not past it
    clock.advance(15)
    throttle.failed("10.0.0.1")
    assert throttle.retry_after_s("10.0.0.1") == 45  # the first failure leaves at 60 s
    assert throttle.retry_after_s("10.0.0.2") is None  # other addresses are unaffected
    clock.advance(44.5)
    assert throttle.retry_after_s("10.0.0.1") == 1
    clock.advance(0.5)
    assert throttle.retry_after_s("10.0.0.1") is None


def test_failures_spread_wider_than_the_window_never_block() -> None:
    clock = FakeClock()
    throttle = FailedAuthThrottle(clock, limit=3, window_s=60)
    for _ in range(20):
        throttle.failed("10.0.0.1")
        assert throttle.retry_after_s("10.0.0.1") is None
        clock.advance(20.1)


def test_memory_is_bounded_by_forgetting_the_least_recent_address() -> None:
    clock = FakeClock()
    throttle = FailedAuthThrottle(clock, limit=1, window_s=60, max_addresses=2)
    _fail(throttle, "a", 2)
    _fail(throttle, "b", 2)
    _fail(throttle, "c", 2)
    assert throttle.retry_after_s("a") is None  # forgotten
    assert throttle.retry_after_s("b") is not None and throttle.retry_after_s("c") is not None


def test_settings_must_be_positive() -> None:
    with pytest.raises(ValueError):
        FailedAuthThrottle(FakeClock(), limit=0)
