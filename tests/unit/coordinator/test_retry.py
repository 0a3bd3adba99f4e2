"""The retry policy is pure: tested with a seeded random source and no clock."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordinator.retry import backoff_ceiling, exponential_backoff


def test_ceiling_doubles_up_to_the_cap() -> None:
    ceilings = [backoff_ceiling(n, base_s=1.0, cap_s=300.0) for n in range(1, 12)]
    assert ceilings == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]


def test_ceiling_of_huge_attempt_numbers_is_the_cap() -> None:
    assert backoff_ceiling(10_000, base_s=1.0, cap_s=300.0) == 300.0
    assert backoff_ceiling(0, base_s=1.0, cap_s=300.0) == 1.0


def test_same_seed_same_delays() -> None:
    first = exponential_backoff(rng=random.Random(7))
    second = exponential_backoff(rng=random.Random(7))
    assert [first(n) for n in range(1, 20)] == [second(n) for n in range(1, 20)]


def test_full_jitter_spreads_over_the_whole_range() -> None:
    delay = exponential_backoff(base_s=1.0, cap_s=300.0, rng=random.Random(1))
    samples = [delay(5) for _ in range(2000)]  # ceiling 16 s
    assert min(samples) < 1.0 and max(samples) > 15.0
    assert 6.0 < sum(samples) / len(samples) < 10.0  # mean of U(0, 16) is 8


def test_negative_settings_are_rejected() -> None:
    with pytest.raises(ValueError):
        exponential_backoff(base_s=-1.0)


@given(
    attempt=st.integers(min_value=0, max_value=10_000),
    base_s=st.floats(min_value=0.0, max_value=100.0),
    cap_s=st.floats(min_value=0.0, max_value=3600.0),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_delay_is_within_zero_and_the_ceiling(
    attempt: int, base_s: float, cap_s: float, seed: int
) -> None:
    delay = exponential_backoff(base_s=base_s, cap_s=cap_s, rng=random.Random(seed))
    value = delay(attempt)
    assert 0.0 <= value <= min(cap_s, backoff_ceiling(attempt, base_s, cap_s))
