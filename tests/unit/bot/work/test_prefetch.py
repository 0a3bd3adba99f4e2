"""How many jobs a claim asks for beyond the free slots: sized from the operations' recent
durations, none for long or unknown ones, a buffer refilled when half empty."""

from __future__ import annotations

import pytest

from bot.work.prefetch import (
    AUTO,
    LATEST,
    MAX_AUTO_PREFETCH,
    MIN_SAMPLES,
    ClaimPlan,
    Prefetch,
    PrefetchPolicy,
    RecentDurations,
    RecentStarts,
    RoundTrip,
)

HOLD_S = 0.5


def policy(
    setting: Prefetch = AUTO,
    *,
    round_trip_s: float = 0.002,
    hold_s: float = HOLD_S,
    running: dict[str, float] | None = None,
    **durations: float,
) -> PrefetchPolicy:
    """A policy whose operations each ran MIN_SAMPLES jobs of the duration given."""
    recent = RecentDurations()
    for op, seconds in durations.items():
        for _ in range(MIN_SAMPLES):
            recent.observe(op, seconds)
    trips = RoundTrip()
    trips.add(round_trip_s)
    longest = running or {}
    return PrefetchPolicy(setting, hold_s, recent, trips, lambda op: longest.get(op, 0.0))


def test_an_unknown_operation_gets_no_prefetch() -> None:
    rules = policy()
    assert rules.target("sum", capacity=2) == 0
    assert rules.plan(["sum"], free=2, capacity=2, held=0, batch_size=5) == ClaimPlan(("sum",), 2)
    assert rules.plan(["sum"], free=0, capacity=2, held=0, batch_size=5) is None


def test_too_few_jobs_seen_is_still_unknown() -> None:
    recent = RecentDurations()
    for _ in range(MIN_SAMPLES - 1):
        recent.observe("sum", 0.0001)
    assert PrefetchPolicy(AUTO, HOLD_S, recent, RoundTrip()).target("sum", 2) == 0


def test_short_jobs_fill_two_round_trips_of_every_slot() -> None:
    # 100 us jobs, 2 ms round trips, 2 slots: 2 x 2 x 2 ms / 100 us = 80 jobs.
    rules = policy(sum=0.0001, round_trip_s=0.002)
    assert rules.target("sum", capacity=2) == 80
    plan = rules.plan(["sum"], free=2, capacity=2, held=0, batch_size=5)
    assert plan == ClaimPlan(("sum",), limit=82, prefetch=80, may_wait=False)
    # Twice the slots, twice the buffer.
    assert rules.target("sum", capacity=4) == 160


def test_at_least_one_job_per_slot() -> None:
    rules = policy(sum=0.02, round_trip_s=0.0001)
    assert rules.target("sum", capacity=3) == 3


def test_no_more_than_the_slots_start_within_half_the_hold_time() -> None:
    # 20 ms jobs over 100 ms round trips would want 20 jobs; 2 slots start only 12 in
    # 125 ms (half of a 250 ms hold, whose short limit is 62.5 ms).
    rules = policy(sum=0.02, round_trip_s=0.1, hold_s=0.25)
    assert rules.target("sum", capacity=2) == 12


def test_the_pace_is_the_bots_own_once_measured() -> None:
    """Jobs that take 100 us each, on a bot that starts one every 2 ms (its claims, its
    reports, a busy machine): the buffer is what it starts in two round trips of 40 ms,
    and no more than it starts in half the hold time."""
    recent = RecentDurations()
    for _ in range(MIN_SAMPLES):
        recent.observe("sum", 0.0001)
    starts = RecentStarts()
    for n in range(MIN_SAMPLES):
        starts.observe(100.0 + n * 0.002)
    trips = RoundTrip()
    trips.add(0.040)
    rules = PrefetchPolicy(AUTO, HOLD_S, recent, trips, starts=starts)
    assert rules.target("sum", capacity=2) == 40
    trips.add(10.0)  # very slow claims: bounded by the hold time, 250 ms / 2 ms
    assert rules.target("sum", capacity=2) == 125


def test_the_buffer_is_capped() -> None:
    rules = policy(sum=0.000001, round_trip_s=0.05)
    assert rules.target("sum", capacity=2) == MAX_AUTO_PREFETCH
    many = policy(10, sum=0.0001)
    assert many.plan(["sum"], free=100, capacity=995, held=0, batch_size=100) == ClaimPlan(
        ("sum",), limit=105, prefetch=5, may_wait=False
    )


@pytest.mark.parametrize("seconds", [0.1001, 0.5, 3.0])
def test_long_jobs_get_none(seconds: float) -> None:
    assert policy(sum=seconds).target("sum", capacity=2) == 0


def test_the_short_limit_follows_a_short_hold_time() -> None:
    # A 40 ms job is short for the default 500 ms hold, long for a 100 ms one.
    assert policy(sum=0.04).is_short("sum")
    assert not policy(sum=0.04, hold_s=0.1).is_short("sum")


def test_an_operation_that_turns_long_stops_being_prefetched_at_once() -> None:
    recent = RecentDurations()
    rules = PrefetchPolicy(AUTO, HOLD_S, recent, RoundTrip())
    for _ in range(20):
        recent.observe("sum", 0.0001)
    assert rules.target("sum", 2) > 0
    recent.observe("sum", 2.0)  # one long job among many short ones
    assert rules.target("sum", 2) == 0
    for _ in range(LATEST - 1):
        recent.observe("sum", 0.0001)
    assert rules.target("sum", 2) == 0
    recent.observe("sum", 0.0001)  # LATEST short ones since: short again
    assert rules.target("sum", 2) > 0


def test_a_job_running_long_now_makes_its_operation_long() -> None:
    assert policy(sum=0.0001, running={"sum": 0.01}).target("sum", 2) > 0
    assert policy(sum=0.0001, running={"sum": 0.2}).target("sum", 2) == 0


def test_free_slots_with_a_long_operation_claim_no_more_than_the_slots() -> None:
    # Jobs of either operation may come: the long one's may not wait in a buffer.
    rules = policy(sum=0.0001, resize=1.5)
    plan = rules.plan(["sum", "resize"], free=2, capacity=2, held=0, batch_size=5)
    assert plan == ClaimPlan(("sum", "resize"), limit=2, prefetch=0)


def test_free_slots_take_turns_with_a_claim_for_the_short_operations() -> None:
    rules = policy(sum=0.0001, resize=1.5)
    plan = rules.plan(["sum", "resize"], free=2, capacity=2, held=0, batch_size=5, short_turn=True)
    assert plan == ClaimPlan(("sum",), limit=82, prefetch=80, may_wait=False)
    after_empty = rules.plan(
        ["sum", "resize"], free=2, capacity=2, held=0, batch_size=5, short_turn=True,
        refill_allowed=False,
    )  # fmt: skip
    assert after_empty == ClaimPlan(("sum", "resize"), limit=2, prefetch=0)


def test_a_full_bot_refills_its_buffer_with_short_operations_only() -> None:
    rules = policy(sum=0.0001, resize=1.5)
    plan = rules.plan(["sum", "resize"], free=0, capacity=2, held=0, batch_size=5)
    assert plan == ClaimPlan(("sum",), limit=80, prefetch=80, may_wait=False)


def test_slots_held_by_long_jobs_are_not_refilled_for() -> None:
    recent = RecentDurations()
    for _ in range(MIN_SAMPLES):
        recent.observe("sum", 0.0001)
    turning = {"slots": 2}
    trips = RoundTrip()
    trips.add(0.002)
    rules = PrefetchPolicy(AUTO, HOLD_S, recent, trips, turning=lambda s: turning["slots"])
    plan = rules.plan(["sum"], free=0, capacity=2, held=0, batch_size=5)
    assert plan is not None and plan.limit == 80
    turning["slots"] = 1  # one slot runs a job that is long already: half the buffer
    plan = rules.plan(["sum"], free=0, capacity=2, held=0, batch_size=5)
    assert plan is not None and plan.limit == 40
    turning["slots"] = 0
    assert rules.plan(["sum"], free=0, capacity=2, held=0, batch_size=5) is None


def test_the_buffer_is_refilled_once_half_empty() -> None:
    rules = policy(sum=0.0001)
    assert rules.plan(["sum"], free=0, capacity=2, held=41, batch_size=5) is None
    plan = rules.plan(["sum"], free=0, capacity=2, held=40, batch_size=5)
    assert plan == ClaimPlan(("sum",), limit=40, prefetch=80, may_wait=False)
    # The refills found the queue empty: no more until a slot claims for every operation.
    assert (
        rules.plan(["sum"], free=0, capacity=2, held=0, batch_size=5, refill_allowed=False) is None
    )


def test_after_a_prefetching_claim_found_nothing_claims_are_plain_and_may_wait() -> None:
    rules = policy(sum=0.0001)
    plan = rules.plan(["sum"], free=2, capacity=2, held=0, batch_size=5, refill_allowed=False)
    assert plan == ClaimPlan(("sum",), limit=2, prefetch=0, may_wait=True)


def test_held_jobs_count_in_what_the_bot_may_hold() -> None:
    # With jobs held (not started: work is not allowed), a claim for the slots still
    # lets the coordinator hand out the slots' worth on top of them.
    rules = policy(sum=0.0001)
    plan = rules.plan(["sum"], free=2, capacity=2, held=80, batch_size=5)
    assert plan == ClaimPlan(("sum",), limit=2, prefetch=80)


def test_a_fixed_number_ignores_durations_and_zero_means_never() -> None:
    assert policy(7).target("never_seen", capacity=2) == 7
    assert policy(7, sum=5.0).plan(["sum"], free=2, capacity=2, held=0, batch_size=5) == (
        ClaimPlan(("sum",), limit=9, prefetch=7, may_wait=False)
    )
    assert policy(0, sum=0.0001).target("sum", capacity=2) == 0


def test_a_bot_with_no_slots_holds_nothing() -> None:
    assert policy(sum=0.0001).target("sum", capacity=0) == 0
    assert policy(5).target("sum", capacity=0) == 0


def test_round_trips_are_averaged() -> None:
    trips = RoundTrip()
    assert trips.seconds > 0  # a guess until measured
    trips.add(0.010)
    trips.add(0.0)
    assert 0.0 < trips.seconds < 0.010
