"""The hooks of a scheduler used alone: it may always claim, an outbox failure is raised."""

from __future__ import annotations

import asyncio

import pytest

from bot.errors import (
    OutboxFullError,
)
from bot.state import BotState
from bot.work.hooks import StandaloneHooks


def test_standalone_hooks() -> None:
    hooks = StandaloneHooks()
    assert hooks.may_claim()
    hooks.activity_changed(BotState.IDLE)
    with pytest.raises(OutboxFullError):
        hooks.fatal(OutboxFullError())
    assert asyncio.run(hooks.renew(1)) is False
