"""What can go wrong on the command line, each with its exit status.

Every failure reaches the user as one line on stderr (`botfleet: error: …`) and
a non-zero exit status, never as a traceback.
"""

from __future__ import annotations

from botfleet.client import ApiError as ClientApiError
from botfleet.client import BotfleetError, CertificateFailed, ConnectionFailed

EXIT_OK = 0
EXIT_ERROR = 1  # the server said no, or could not be reached
EXIT_USAGE = 2  # bad arguments or configuration (argparse uses 2 too)
EXIT_JOBS_FAILED = 3  # `--wait`: every job ended, but not all of them succeeded
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT
EXIT_TERMINATED = 143  # SIGTERM, likewise


class CliError(Exception):
    """The command failed."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__ or "failed")


class UsageError(CliError):
    """Bad arguments or configuration."""

    exit_code = EXIT_USAGE


class ServerUnreachable(CliError):
    """The coordinator could not be reached."""


class ApiError(CliError):
    """The coordinator answered with an error (`{"error": {"code", "message"}}`)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.detail = message
        super().__init__(_describe(status, code, message))


def from_client(error: BotfleetError) -> CliError:
    """The client's error as the command line words it."""
    if isinstance(error, ClientApiError):
        return ApiError(error.status, error.code, error.message)
    if isinstance(error, CertificateFailed):
        return ServerUnreachable(
            f"{error}; trust the CA that signed it with --ca-file or BOTFLEET_CA_FILE "
            "(or check --server)"
        )
    if isinstance(error, ConnectionFailed):
        if error.before_sending:
            return ServerUnreachable(
                f"{error}; is `botfleet server` running? (set --server or BOTFLEET_SERVER)"
            )
        return ServerUnreachable(str(error))
    return CliError(str(error))


def _describe(status: int, code: str, message: str) -> str:
    text = f"{message} ({code}, HTTP {status})"
    if status == 401:
        return (
            f"the coordinator rejected the token: {text}; pass the right one with --token or "
            "BOTFLEET_TOKEN (or --admin-token, BOTFLEET_ADMIN_TOKEN), or --state-dir to the "
            "server's state folder"
        )
    if status == 403:
        return f"not allowed: {text}"
    if status == 404:
        return f"not found: {text}"
    if status == 409:
        return f"conflict: {text}"
    return text
