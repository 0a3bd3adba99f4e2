"""Backoff with full jitter, and the retry delay that honours Retry-After: pure, no clock."""

from __future__ import annotations

import random

import pytest

from bot.errors import (
    NetworkError,
    OverloadedError,
)
from bot.link.backoff import Backoff, RetryBudget, backoff_ms, retry_delay_s


def test_backoff_is_full_jitter_between_min_and_the_capped_ceiling() -> None:
    rng = random.Random(1)
    for attempt in range(12):
        ceiling = min(60_000, 500 * 2**attempt)
        for _ in range(50):
            assert 500 <= backoff_ms(attempt, 500, 60_000, rng) <= ceiling


def test_backoff_spreads_and_reaches_the_cap() -> None:
    rng = random.Random(2)
    late = [backoff_ms(20, 500, 60_000, rng) for _ in range(200)]
    assert max(late) > 50_000 and min(late) < 10_000  # jitter over the whole window
    assert backoff_ms(10_000, 500, 60_000, rng) <= 60_000  # huge attempts do not overflow


def test_backoff_with_min_above_max_stays_at_max() -> None:
    assert backoff_ms(0, 900, 100, random.Random(3)) == 100


def test_backoff_refuses_negative_attempts() -> None:
    with pytest.raises(ValueError, match="attempt"):
        backoff_ms(-1, 1, 2, random.Random())


def test_backoff_counter_grows_and_resets() -> None:
    backoff = Backoff(100, 10_000, random.Random(4))
    first = backoff.next_s()
    assert first == pytest.approx(0.1)
    for _ in range(5):
        backoff.next_s()
    assert backoff.attempt == 6
    backoff.reset()
    assert backoff.attempt == 0 and backoff.next_s() == pytest.approx(0.1)


def test_retry_delay_is_the_backoff_or_the_servers_retry_after_whichever_is_longer() -> None:
    busy = OverloadedError(503, "busy", retry_after_s=7.0)
    assert retry_delay_s(2.0, busy) == 7.0
    assert retry_delay_s(9.0, busy) == 9.0
    assert retry_delay_s(2.0, OverloadedError(429, "busy")) == 2.0
    assert retry_delay_s(2.0, NetworkError("down")) == 2.0


def test_retry_delay_is_capped() -> None:
    busy = OverloadedError(503, "busy", retry_after_s=60.0)
    assert retry_delay_s(2.0, busy, cap_s=5.0) == 5.0
    assert retry_delay_s(8.0, NetworkError("down"), cap_s=5.0) == 5.0
    assert retry_delay_s(1.0, NetworkError("down"), cap_s=5.0) == 1.0


def test_backoff_after_an_error_takes_the_next_step_of_the_streak() -> None:
    backoff = Backoff(1000, 1000, random.Random(1))
    assert backoff.after(OverloadedError(503, "busy", retry_after_s=3.0)) == 3.0
    assert backoff.after(NetworkError("down")) == 1.0
    assert backoff.attempt == 2


def test_the_retry_budget_starts_full_and_runs_dry_without_answers() -> None:
    budget = RetryBudget(0.5, cap=3.0)
    assert [budget.spend() for _ in range(4)] == [True, True, True, False]


def test_answers_earn_retries_up_to_the_cap() -> None:
    budget = RetryBudget(0.5, cap=3.0)
    while budget.spend():
        pass
    budget.earn()
    assert not budget.spend()  # half a retry is not one
    budget.earn()
    assert budget.spend() and not budget.spend()
    for _ in range(100):
        budget.earn()
    assert budget.tokens == 3.0


def test_a_loss_rate_under_the_ratio_is_always_retried_at_once() -> None:
    """One call in five lost (one retry per four answers) under a ratio of 0.5: the
    budget never runs dry."""
    budget = RetryBudget(0.5)
    for call in range(1000):
        if call % 5 == 4:
            assert budget.spend()
        else:
            budget.earn()


def test_a_negative_budget_is_refused() -> None:
    with pytest.raises(ValueError):
        RetryBudget(-0.1)
