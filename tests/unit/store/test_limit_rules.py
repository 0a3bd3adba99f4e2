"""The arithmetic of limits without a database: the start window and what a limit holds
back."""

from __future__ import annotations

import pytest

from coordinator.store.limits import (
    START_WINDOW_S,
    LimitRecord,
    LimitState,
    StartWindow,
    operations_to_wake,
    room,
    soonest_token,
    token_wait,
)

T0 = 1_000 * START_WINDOW_S  # a window's beginning


def test_starts_are_counted_in_the_window_they_fall_in() -> None:
    window = StartWindow().counted(T0 + 1, 4)
    assert window == StartWindow(T0, 4, 0)
    assert window.counted(T0 + 9, 1) == StartWindow(T0, 5, 0)
    assert window.counted(T0 + START_WINDOW_S + 2, 2) == StartWindow(T0 + START_WINDOW_S, 2, 4)
    # Past the next window, the old starts are forgotten.
    assert window.counted(T0 + 3 * START_WINDOW_S, 1) == StartWindow(T0 + 3 * START_WINDOW_S, 1, 0)


def test_the_rate_slides_over_the_last_window() -> None:
    window = StartWindow(T0, 10, 0)
    assert window.rate(T0 + 5) == pytest.approx(10 / START_WINDOW_S)
    # A quarter into the next window: three quarters of the old starts still count.
    assert window.rate(T0 + 1.25 * START_WINDOW_S) == pytest.approx(7.5 / START_WINDOW_S)
    assert window.rate(T0 + 2 * START_WINDOW_S) == 0.0
    assert StartWindow().rate(T0) == 0.0


def test_room_is_the_tighter_of_the_caps() -> None:
    assert room(None, None, 100, 1.0) == 2**31 - 1
    assert room(3, None, 1, 1.0) == 2
    assert room(3, 2.0, 1, 0.9999999999) == 1  # float rounding is a whole token
    assert room(3, 2.0, 1, 0.5) == 0
    assert room(2, None, 5, 1.0) == 0  # lowered below what runs


def test_held_back_is_what_the_room_leaves_waiting() -> None:
    full = LimitRecord("db", 2, None, 1, running=2, tokens=1.0)
    assert full.held_back(9) == 9
    roomy = LimitRecord("db", 5, None, 1, running=2, tokens=1.0)
    assert roomy.held_back(2) == 0 and roomy.held_back(10) == 7


def test_a_freed_named_limit_wakes_every_operation_with_jobs_under_it() -> None:
    groups = [("sum", "db"), ("resize", "api,db"), ("email", "api"), ("sum", "api")]
    assert operations_to_wake({"db"}, groups) == ["resize", "sum"]
    assert operations_to_wake({"api"}, groups) == ["email", "resize", "sum"]
    assert operations_to_wake({"other"}, groups) == []


def test_a_spent_rate_alone_says_when_its_next_token_comes() -> None:
    states = {
        "api": LimitState("api", None, 2.0, 1, tokens=0.0, refilled_at_s=T0),
        "db": LimitState("db", 1, None, 1, tokens=1.0, refilled_at_s=T0),
        "slow": LimitState("slow", None, 0.5, 1, tokens=0.5, refilled_at_s=T0),
    }
    running = {"api": 0, "db": 1, "slow": 0}
    assert token_wait(states, running, ("api",), T0) == pytest.approx(0.5)
    assert token_wait(states, running, ("api",), T0 + 1) is None  # refilled
    assert token_wait(states, running, ("api", "db"), T0) is None  # full: a freed place wakes
    assert token_wait(states, running, ("api", "slow"), T0) == pytest.approx(1.0)
    groups = [("sum", "api,slow"), ("sum", "api"), ("sum", "db")]
    assert soonest_token(states, running, groups, T0) == pytest.approx(0.5)
    assert soonest_token(states, running, [("sum", "db")], T0) is None
