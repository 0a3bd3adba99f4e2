"""Every halt says why, and what to do about it, in one line."""

from __future__ import annotations

from pathlib import Path

from bot.agent import hints
from bot.errors import (
    AuthError,
    IdentityTakenError,
    OutboxError,
    SettingsError,
    StateDirError,
)
from bot.settings import Settings


def test_every_halt_says_why_and_what_to_do(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    errors = [
        hints.bad_setting(SettingsError("MAX_CONCURRENCY", "must be between 1 and 10000")),
        hints.state_dir(settings, StateDirError("cannot write")),
        hints.outbox(settings, OutboxError("disk full")),
        hints.identity(settings, IdentityTakenError("taken")),
        hints.refused(settings, AuthError(401, "bad token")),
        hints.crashed("heartbeat", RuntimeError("bug")),
    ]
    for error in errors:
        assert error.why and error.todo and "\n" not in str(error)
        assert str(error) == f"{error.why}. {error.todo}"
    assert str(tmp_path) in errors[2].todo and "BOT_STATE_DIR" in errors[2].todo
    assert "BOT_ENROLL_TOKEN" in errors[4].todo
