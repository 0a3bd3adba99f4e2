"""What the client raises: one root, the docstring as the default message.

The coordinator's error answers (`{"error": {"code", "message"}}`) become `ApiError`
subclasses by status; a job that ended badly becomes `JobFailed` or `JobCancelled`,
carrying the job; a coordinator that cannot be reached becomes `ConnectionFailed`.
"""

from __future__ import annotations

from botfleet.protocol import messages as m


class BotfleetError(Exception):
    """The botfleet client failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__ or "failed")


class ApiError(BotfleetError):
    """The coordinator answered with an error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        super().__init__(f"{message} ({code}, HTTP {status})")


class BadRequest(ApiError):
    """The coordinator refused the request as malformed or invalid."""


class Unauthorized(ApiError):
    """The token is missing, unknown or expired."""


class Forbidden(ApiError):
    """The token is valid but may not make this call."""


class NotFound(ApiError):
    """No such job, bot or route."""


class Conflict(ApiError):
    """The call conflicts with the job's or bot's state."""


class Unavailable(ApiError):
    """The coordinator kept shedding load (429/503) after the retries `Retry-After` asked for."""


class ConnectionFailed(BotfleetError):
    """The coordinator could not be reached, or the connection was lost."""

    def __init__(self, message: str, *, server: str, before_sending: bool) -> None:
        self.server = server
        # True when the request never left (refused, no route, DNS): nothing happened.
        self.before_sending = before_sending
        super().__init__(message)


class CertificateFailed(ConnectionFailed):
    """The coordinator's certificate could not be verified; retrying cannot help."""

    def __init__(self, server: str, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"cannot verify the certificate of {server}: {reason}",
            server=server,
            before_sending=False,
        )


class UnexpectedAnswer(BotfleetError):
    """The coordinator's answer does not match the protocol."""


class JobError(BotfleetError):
    """The job ended without a result."""

    def __init__(self, job: m.JobView) -> None:
        self.job = job
        self.code = job.state
        self.message = job.error or job.state
        super().__init__(f"job {job.id} ({job.op}) {job.state}: {self.message}")


class JobFailed(JobError):
    """The job failed."""


class JobCancelled(JobError):
    """The job was cancelled."""


class WaitTimeout(BotfleetError, TimeoutError):
    """The job was not done in time."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: BadRequest,
    429: Unavailable,
    503: Unavailable,
}


def api_error(status: int, code: str, message: str) -> ApiError:
    """The exception for an error answer."""
    return _BY_STATUS.get(status, ApiError)(status, code, message)
