"""The bot's exceptions: one root, and the docstring is each class's default message."""

from __future__ import annotations


class BotError(Exception):
    """The bot failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (type(self).__doc__ or type(self).__name__).strip())

    @property
    def message(self) -> str:
        return str(self)


class SettingsError(BotError):
    """A setting has a bad value."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


class StateDirError(BotError):
    """The bot's state folder cannot be used."""


class IdentityTakenError(StateDirError):
    """Another bot process took this bot's identity."""


class InvalidTransition(BotError):
    """The lifecycle does not allow this move."""


class UnsafeError(BotError):
    """Going on could lose data or do harm: the bot must halt (SAFE_HALT).

    `why` says what happened, `todo` what the operator should do about it; the bot
    ends with one line holding both.
    """

    def __init__(self, why: str, todo: str) -> None:
        super().__init__(f"{why}. {todo}")
        self.why = why
        self.todo = todo


class RevokedHalt(UnsafeError):
    """An operator revoked this bot: it must not work again until an operator allows it.

    The bot ends in SAFE_HALT as for any halt, but says no goodbye (its token is dead)
    and exits 5, which a supervisor can be told not to restart (systemd:
    `RestartPreventExitStatus=5`): starting it again would only be refused again.
    """


class PluginError(BotError):
    """A plugin could not run the job.

    Raised by a handler for a job that can never succeed (an invalid payload), it
    fails the job without a retry unless `retryable=True`.
    """

    def __init__(self, message: str | None = None, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class OutboxError(BotError):
    """The outbox could not keep a report on disk."""


class OutboxFullError(OutboxError):
    """The disk holding the outbox is full (or over quota)."""


# ---------------------------------------------------------------- coordinator calls


class CoordinatorError(BotError):
    """A call to the coordinator failed."""

    #: Worth trying again later: the fault is in the network or the server's load.
    transient = False
    status: int | None = None

    def __init__(self, message: str | None = None, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class NetworkError(CoordinatorError):
    """The coordinator did not answer (refused, reset, timed out)."""

    transient = True


class TlsError(CoordinatorError):
    """The coordinator's certificate could not be verified: the bot must not talk to it.

    Not transient: the same certificate fails the same way on every try, and a bot that
    kept retrying would hide a wrong address or a missing CA file (BOT_CA_FILE).
    """

    def __init__(self, server: str, reason: str) -> None:
        super().__init__(f"cannot verify the certificate of {server}: {reason}")
        self.server = server
        self.reason = reason


class ClientCertificateRequired(TlsError):
    """The coordinator requires a client certificate (mutual TLS) and the bot has none.

    Not transient either: without BOT_CLIENT_CERT every try is refused the same way.
    """

    def __init__(self, server: str) -> None:
        CoordinatorError.__init__(
            self,
            f"the coordinator at {server} requires a client certificate (mutual TLS) and "
            "this bot presents none",
        )
        self.server = server
        self.reason = "no client certificate"


class HttpError(CoordinatorError):
    """The coordinator answered with an error status."""

    def __init__(self, status: int, message: str | None = None, *, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.status = status


class RejectedError(HttpError):
    """The coordinator rejected the request as invalid (400, 413, other 4xx)."""


class TooLargeError(RejectedError):
    """The request body is over the coordinator's size limit (413); `limit_bytes` is that
    limit when the answer says it."""

    def __init__(
        self,
        status: int,
        message: str | None = None,
        *,
        code: str | None = None,
        limit_bytes: int | None = None,
    ) -> None:
        super().__init__(status, message, code=code)
        self.limit_bytes = limit_bytes


class AuthError(HttpError):
    """The token is missing, wrong or expired (401)."""


class ForbiddenError(HttpError):
    """The token is valid but not allowed to do this (403)."""


class BotRevokedError(ForbiddenError):
    """An operator revoked this bot: the coordinator refuses its bot_key at registration
    (403 `bot_revoked`)."""


class NotFoundError(HttpError):
    """The coordinator does not know this bot or job (404)."""


class ConflictError(HttpError):
    """The job is already terminal, or its lease was lost (409)."""


class OverloadedError(HttpError):
    """The coordinator sheds load (429, 503); `retry_after_s` says when to come back."""

    transient = True

    def __init__(
        self,
        status: int,
        message: str | None = None,
        *,
        code: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(status, message, code=code)
        self.retry_after_s = retry_after_s


class ServerError(HttpError):
    """The coordinator failed (5xx) or answered with a body the protocol does not allow."""

    transient = True
