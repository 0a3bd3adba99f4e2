"""The lifecycle table as data, its moves, listeners and waits."""

from __future__ import annotations

import asyncio

import pytest

from bot.agent.lifecycle import FINAL_STATES, HISTORY_KEPT, TRANSITIONS, WORK_STATES, Lifecycle
from bot.errors import (
    InvalidTransition,
)
from bot.state import BotState

S = BotState


def test_every_state_has_a_row_and_final_states_are_final() -> None:
    assert set(TRANSITIONS) == set(BotState)
    for state in FINAL_STATES:
        assert TRANSITIONS[state] == frozenset()
    for state in set(BotState) - FINAL_STATES:
        assert TRANSITIONS[state], state


def test_the_main_path_is_allowed() -> None:
    lifecycle = Lifecycle()
    path = [S.REGISTER, S.BACKOFF, S.REGISTER, S.SYNC, S.IDLE, S.CLAIM, S.PROCESS, S.REPORT]
    path += [S.IDLE, S.DEGRADED_NET, S.REGISTER, S.SYNC, S.QUARANTINED, S.IDLE, S.DRAINING]
    path += [S.SHUTDOWN]
    for state in path:
        lifecycle.move(state)
    assert lifecycle.history == [S.BOOTSTRAP, *path]


def test_the_history_keeps_only_the_latest_moves() -> None:
    lifecycle = Lifecycle()
    for state in [S.REGISTER, S.SYNC, S.IDLE]:
        lifecycle.move(state)
    cycle = [S.CLAIM, S.PROCESS, S.REPORT, S.IDLE]
    for _ in range(3 * HISTORY_KEPT):  # a bot that ran 3,000 jobs
        for state in cycle:
            lifecycle.move(state)
    assert HISTORY_KEPT <= len(lifecycle.history) <= 2 * HISTORY_KEPT
    assert lifecycle.history[-4:] == cycle and lifecycle.state is S.IDLE


def test_a_move_not_in_the_table_raises() -> None:
    lifecycle = Lifecycle()
    with pytest.raises(InvalidTransition, match="no move from BOOTSTRAP to PROCESS"):
        lifecycle.move(S.PROCESS)
    lifecycle.move(S.BOOTSTRAP)  # staying put is no move
    assert lifecycle.history == [S.BOOTSTRAP]


def test_a_custom_table_extends_the_lifecycle() -> None:
    table = {**TRANSITIONS, S.BOOTSTRAP: TRANSITIONS[S.BOOTSTRAP] | {S.IDLE}}
    lifecycle = Lifecycle(table)
    lifecycle.move(S.IDLE)
    assert lifecycle.state is S.IDLE


def test_listeners_and_quiet_work_moves(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    moves: list[tuple[BotState, BotState, str]] = []
    lifecycle = Lifecycle(initial=S.SYNC)
    lifecycle.subscribe(lambda a, b, why: moves.append((a, b, why)))
    lifecycle.move(S.IDLE, "registered")
    lifecycle.move(S.CLAIM)
    lifecycle.move(S.CLAIM)  # staying put is no move
    assert moves == [(S.SYNC, S.IDLE, "registered"), (S.IDLE, S.CLAIM, "")]
    info = [r for r in caplog.records if r.levelname == "INFO"]
    assert [r.getMessage() for r in info] == ["state SYNC -> IDLE (registered)"]
    debug = [
        r for r in caplog.records if r.levelname == "DEBUG" and r.name == "bot.agent.lifecycle"
    ]
    assert [r.getMessage() for r in debug] == ["state IDLE -> CLAIM"]
    assert lifecycle.working and not lifecycle.final


async def test_wait_for_a_state() -> None:
    lifecycle = Lifecycle()
    waiter = asyncio.create_task(lifecycle.wait_for({S.SYNC}))
    lifecycle.move(S.REGISTER)
    await asyncio.sleep(0)
    assert not waiter.done()
    lifecycle.move(S.SYNC)
    assert await asyncio.wait_for(waiter, 30) is S.SYNC
    assert {S.IDLE, S.CLAIM, S.PROCESS, S.REPORT} == WORK_STATES


async def test_several_wait_for_the_states_they_want() -> None:
    lifecycle = Lifecycle(initial=S.SYNC)
    working = asyncio.create_task(lifecycle.wait_for({S.CLAIM}))
    stopping = asyncio.create_task(lifecycle.wait_for({S.DRAINING}))
    await asyncio.sleep(0)
    lifecycle.move(S.IDLE)
    lifecycle.move(S.CLAIM)  # two moves before the waiters look: they see the latest
    assert await asyncio.wait_for(working, 30) is S.CLAIM
    assert not stopping.done()
    lifecycle.move(S.DRAINING)
    assert await asyncio.wait_for(stopping, 30) is S.DRAINING
    assert await asyncio.wait_for(lifecycle.wait_for({S.DRAINING}), 30) is S.DRAINING
