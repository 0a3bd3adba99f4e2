"""The one error shape of the API: `{"error": {"code": "snake_case", "message": "..."}}`."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from botfleet.protocol import encode
from botfleet.protocol.messages import ErrorBody, ErrorResponse

JSON = "application/json"


class ApiError(Exception):
    """An answer other than success; raised by handlers, rendered by the middleware."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = dict(headers or {})


class InvalidBody(ApiError):
    code = "invalid_body"


class InvalidQuery(ApiError):
    code = "invalid_query"


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message, code=code, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ApiError):
    status = 403
    code = "forbidden"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class TooManyRequests(ApiError):
    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, retry_after_s: int, *, code: str | None = None) -> None:
        super().__init__(message, code=code, headers={"Retry-After": str(retry_after_s)})


class Unavailable(ApiError):
    status = 503
    code = "unavailable"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    body = encode(ErrorResponse(error=ErrorBody(code=code, message=message)))
    return web.Response(status=status, body=body, content_type=JSON, headers=headers)


def render(error: ApiError) -> web.Response:
    return error_response(error.status, error.code, error.message, error.headers)
