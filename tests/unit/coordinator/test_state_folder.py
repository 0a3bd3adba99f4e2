"""The coordinator's state folder is private (0700), whatever the umask; real folders."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from botfleet.clock import FakeClock
from coordinator.app import create_app
from coordinator.config import ServerConfig
from coordinator.state_folder import prepare_state_folder
from coordinator.store import open_store


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def test_a_new_state_folder_is_0700_with_its_generated_tokens_0600(tmp_path: Path) -> None:
    state = tmp_path / "deep" / "state"
    clock = FakeClock()
    store = open_store(f"sqlite:///{state / 'botfleet.db'}", clock, lambda attempt: 0.0)
    create_app(ServerConfig(state_dir=state), store, clock)
    assert mode(state) == 0o700
    assert {p.name: mode(p) for p in state.iterdir()} == {
        "admin_token": 0o600,
        "enroll_token": 0o600,
    }


def test_a_wider_existing_folder_is_narrowed_with_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    with caplog.at_level(logging.INFO):
        prepare_state_folder(ServerConfig(state_dir=state))
        prepare_state_folder(ServerConfig(state_dir=state))  # a second start: nothing to say
    assert mode(state) == 0o700
    lines = [r.getMessage() for r in caplog.records if str(state) in r.getMessage()]
    assert lines == [f"the folder {state} was open to other users (0755); narrowed it to 0700"]


def test_a_folder_nothing_is_kept_in_is_not_created(tmp_path: Path) -> None:
    config = ServerConfig(
        state_dir=tmp_path / "unused",
        admin_token="a" * 32,
        enroll_token="e" * 32,
        db_url="postgresql://postgres@127.0.0.1/test",
    )
    prepare_state_folder(config)
    assert not config.state_dir.exists()
