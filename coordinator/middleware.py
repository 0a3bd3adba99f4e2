"""Every failure leaves as `{"error": {"code", "message"}}`; a client never causes a 500."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from botfleet.protocol import ProtocolError
from coordinator.errors import ApiError, error_response, render
from coordinator.store.base import StoreError, StoreFull

log = logging.getLogger(__name__)

# aiohttp's own refusals (no route, wrong method, body too big), in the API's words.
HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}
KEPT_HEADERS = ("Allow", "Retry-After")


def error_middleware(store_retry_after_s: int, max_body_bytes: int) -> Middleware:
    @web.middleware
    async def translate_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return render(exc)
        except ProtocolError as exc:
            code = "invalid_body" if exc.field is not None else "malformed_json"
            return error_response(400, code, str(exc))
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return _http_error(request, exc, max_body_bytes)
        except StoreFull as exc:
            log.error("%s %s: the database is full: %s", request.method, request.path, exc)
            return error_response(
                503,
                "store_full",
                "the coordinator's database has no room left (its disk is full); nothing "
                "of this request was written. Free some space, then try again",
                {"Retry-After": str(store_retry_after_s)},
            )
        except StoreError as exc:
            log.warning("%s %s: store unavailable: %s", request.method, request.path, exc)
            return error_response(
                503,
                "store_unavailable",
                "the job store is unavailable; try again shortly",
                {"Retry-After": str(store_retry_after_s)},
            )
        except ConnectionResetError:
            raise  # the client left: there is nobody to answer
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return error_response(500, "internal_error", "internal error; see the server log")

    return translate_errors


def _http_error(request: web.Request, exc: web.HTTPException, max_body_bytes: int) -> web.Response:
    code = HTTP_CODES.get(exc.status, exc.reason.lower().replace(" ", "_"))
    if exc.status == 404:
        message = f"no route {request.method} {request.path}"
    elif exc.status == 405:
        allowed = exc.headers.get("Allow", "")
        message = f"{request.method} is not allowed on {request.path} (allowed: {allowed})"
    elif exc.status == 413:
        message = f"request body too large (limit {max_body_bytes} bytes)"
    else:
        message = exc.text or exc.reason
    headers = {name: exc.headers[name] for name in KEPT_HEADERS if name in exc.headers}
    return error_response(exc.status, code, message, headers)
