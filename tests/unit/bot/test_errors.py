"""The bot's errors: one root, the docstring as the default message."""

from __future__ import annotations

from bot.errors import (
    BotError,
    PluginError,
    SettingsError,
)


def test_errors_have_default_messages() -> None:
    assert str(BotError()) == "The bot failed."
    assert BotError("custom").message == "custom"
    assert PluginError().retryable is False
    error = SettingsError("X", "bad")
    assert (str(error), error.variable) == ("X: bad", "X")
