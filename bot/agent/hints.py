"""Why the bot must halt and what to do about it: one `UnsafeError` per cause.

The bot ends in SAFE_HALT with one line made of both halves (see `bot.agent.shutdown`),
so an operator reading only the last line of the log knows what to fix.
"""

from __future__ import annotations

from bot.errors import (
    BotError,
    BotRevokedError,
    ClientCertificateRequired,
    CoordinatorError,
    RevokedHalt,
    SettingsError,
    TlsError,
    UnsafeError,
)
from bot.settings import Settings


def bad_setting(error: SettingsError) -> UnsafeError:
    return UnsafeError(f"bad setting {error}", "Fix it and start the bot again")


def state_dir(settings: Settings, error: BotError) -> UnsafeError:
    return UnsafeError(
        f"the state folder cannot be used: {error}",
        f"Make BOT_STATE_DIR ({settings.state_dir}) a folder this user can write, with free "
        "space, and start the bot again",
    )


def outbox(settings: Settings, error: BotError) -> UnsafeError:
    return UnsafeError(
        f"the outbox cannot keep reports: {error}",
        f"Make BOT_STATE_DIR ({settings.state_dir}) a writable folder with free space and "
        "start the bot again; reports already kept there are delivered then",
    )


def identity(settings: Settings, error: BotError) -> UnsafeError:
    return UnsafeError(
        f"this bot's identity cannot be kept: {error}",
        f"Give each bot process its own BOT_NAME or BOT_STATE_DIR (this one: "
        f"{settings.state_dir}), then start this bot again",
    )


def refused(settings: Settings, error: CoordinatorError) -> UnsafeError:
    if isinstance(error, BotRevokedError):
        return revoked(error)
    return UnsafeError(
        f"registration refused: {error}",
        f"Check BOT_ENROLL_TOKEN and SERVER_BASE ({', '.join(settings.server_bases)}; it ends "
        "in /v1), then start the bot again",
    )


def untrusted(error: TlsError) -> UnsafeError:
    if isinstance(error, ClientCertificateRequired):
        return UnsafeError(
            str(error),
            "Set BOT_CLIENT_CERT (and BOT_CLIENT_KEY, unless the key is in the same file) to "
            "a certificate signed by the coordinator's client CA, then start the bot again",
        )
    return UnsafeError(
        str(error),
        "Set BOT_CA_FILE to the CA bundle that signed the coordinator's certificate (or "
        "fix SERVER_BASE), then start the bot again",
    )


def cannot_go_on(settings: Settings, error: CoordinatorError) -> UnsafeError:
    """A call refused for good: the certificate, or registration."""
    return untrusted(error) if isinstance(error, TlsError) else refused(settings, error)


def revoked(error: BotRevokedError) -> RevokedHalt:
    return RevokedHalt(
        f"this bot is revoked: {error}",
        "It stays stopped (exit 5: its supervisor should not restart it); start it again "
        "once an operator has allowed it",
    )


def crashed(task: str, error: BaseException) -> UnsafeError:
    return UnsafeError(
        f"the bot's {task} task crashed: {error!r}",
        "This is a bug in the bot: please report it with the log above; starting the bot "
        "again is safe",
    )
