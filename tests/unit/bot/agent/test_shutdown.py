"""The shutdown's policy: which ending the stop requests call for, and what a hard stop leaves."""

from __future__ import annotations

from pathlib import Path

from bot.agent.lifecycle import Lifecycle
from bot.agent.shutdown import (
    EXIT_OK,
    EXIT_RESTART,
    EXIT_SAFE_HALT,
    EXIT_STOPPED_HARD,
    end_before_online,
    ending_for,
    stopped_before_registering,
)
from bot.agent.stops import StopRequests
from bot.errors import UnsafeError
from bot.settings import Settings
from bot.state import BotState

S = BotState


def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path, drain_grace_s=7.0, cancel_wait_s=2.0)


def test_a_stop_request_drains(tmp_path: Path) -> None:
    stops = StopRequests()
    stops.request_stop("SIGTERM")
    ending = ending_for(stops, settings(tmp_path))
    assert (ending.code, ending.shown, ending.why, ending.reason) == (
        EXIT_OK,
        S.DRAINING,
        "SIGTERM",
        "drained",
    )
    assert (ending.grace_s, ending.abandon_wait_s) == (7.0, 2.0)
    assert ending.deliver and ending.flush_outbox and ending.farewell


def test_a_restart_drains_and_exits_4(tmp_path: Path) -> None:
    stops = StopRequests()
    stops.request_restart("9 abandoned handler threads still run")
    ending = ending_for(stops, settings(tmp_path))
    assert (ending.code, ending.shown, ending.why, ending.reason) == (
        EXIT_RESTART,
        S.DRAINING,
        "9 abandoned handler threads still run",
        "drained for a restart",
    )
    assert (ending.grace_s, ending.abandon_wait_s) == (7.0, 2.0)
    assert ending.deliver and ending.flush_outbox and ending.farewell


def test_a_restart_asked_for_while_ending_changes_nothing(tmp_path: Path) -> None:
    drained = StopRequests()
    drained.request_stop("SIGTERM")
    drained.request_restart("too many abandoned threads")
    assert ending_for(drained, settings(tmp_path)).code == EXIT_OK
    halted = StopRequests()
    halted.halt(UnsafeError("outbox gone", "fix it"))
    halted.request_restart("too many abandoned threads")
    assert ending_for(halted, settings(tmp_path)).code == EXIT_SAFE_HALT
    assert not halted.stop.is_set()


def test_a_halt_abandons_the_jobs_and_still_says_goodbye(tmp_path: Path) -> None:
    stops = StopRequests()
    stops.halt(UnsafeError("outbox gone", "fix it"))
    ending = ending_for(stops, settings(tmp_path))
    assert (ending.code, ending.shown, ending.why) == (EXIT_SAFE_HALT, S.SAFE_HALT, "outbox gone")
    assert ending.grace_s is None and ending.abandon_wait_s == 2.0
    assert ending.deliver and not ending.flush_outbox and ending.farewell


def test_a_halt_during_a_drain_ends_that_drain(tmp_path: Path) -> None:
    stops = StopRequests()
    stops.request_stop("SIGTERM")
    stops.halt(UnsafeError("outbox gone", "fix it"))
    assert ending_for(stops, settings(tmp_path)).shown is S.DRAINING


def test_a_hard_stop_waits_for_nothing_and_leaves_quietly(tmp_path: Path) -> None:
    stops = StopRequests()
    stops.request_stop("SIGTERM")
    stops.request_stop("SIGTERM")
    assert stops.hard.is_set()
    hard = ending_for(stops, settings(tmp_path)).hardened()
    assert (hard.code, hard.reason, hard.grace_s, hard.abandon_wait_s) == (
        EXIT_STOPPED_HARD,
        "stopped hard",
        None,
        None,
    )
    assert not (hard.deliver or hard.flush_outbox or hard.farewell)
    assert hard.shown is S.DRAINING  # what was shown stays


def test_ends_before_the_bot_is_online() -> None:
    lifecycle, stops = Lifecycle(), StopRequests()
    error = UnsafeError("bad setting X", "fix it")
    assert end_before_online(lifecycle, stops, 2, error) == 2
    assert lifecycle.state is S.SAFE_HALT and stops.unsafe is error

    lifecycle, stops = Lifecycle(initial=S.BACKOFF), StopRequests()
    stops.request_stop("SIGINT")
    assert stopped_before_registering(lifecycle, stops) == EXIT_OK
    assert lifecycle.history[-2:] == [S.BACKOFF, S.SHUTDOWN]
