"""The bot's state folder (identity, outbox) is 0700 with 0600 files; real files, umask 022."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.identity import IdentityStore
from bot.reports.outbox import OUTBOX_FILE, Outbox
from botfleet.protocol import messages as m


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _use(state: Path) -> None:
    identities = IdentityStore(state, make_instance_id=lambda: "inst_1")
    identities.rotate_instance_id(identities.load("worker", "host", "Linux-x86_64"))
    with Outbox(state) as outbox:
        outbox.append([m.ReportItem(job_id="job_1", attempt=1, action="complete", result={})])


def test_a_new_state_folder_is_private(tmp_path: Path) -> None:
    state = tmp_path / "bot-state"
    _use(state)
    assert mode(state) == 0o700
    assert {p.name: mode(p) for p in state.iterdir()} == {
        "identity.json": 0o600,
        OUTBOX_FILE: 0o600,
    }


def test_a_state_folder_an_older_version_left_open_is_narrowed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "bot-state"
    state.mkdir()
    state.chmod(0o755)
    (state / OUTBOX_FILE).write_bytes(b"")
    (state / OUTBOX_FILE).chmod(0o644)
    with caplog.at_level(logging.WARNING):
        _use(state)
        _use(state)  # the next start finds nothing to narrow
    assert mode(state) == 0o700
    assert {p.name: mode(p) for p in state.iterdir()} == {
        "identity.json": 0o600,
        OUTBOX_FILE: 0o600,
    }
    narrowed = [r.getMessage() for r in caplog.records if "narrowed" in r.getMessage()]
    assert narrowed == [f"the folder {state} was open to other users (0755); narrowed it to 0700"]
