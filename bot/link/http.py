"""The coordinator's bot API over HTTP: one pooled aiohttp session, typed requests and answers.

Every call has a timeout; every answer is decoded with the protocol structs (which
tolerate extra and missing fields) and every failure becomes one exception of
`bot.errors`. With several server bases (fail-over), a call that gets no answer
moves the client to the next base, so the caller's retry goes there.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol, TypeVar
from urllib.parse import quote

import aiohttp

from bot.errors import (
    AuthError,
    BotRevokedError,
    ClientCertificateRequired,
    ConflictError,
    ForbiddenError,
    HttpError,
    NetworkError,
    NotFoundError,
    OverloadedError,
    RejectedError,
    ServerError,
    TlsError,
    TooLargeError,
)
from botfleet.protocol import ProtocolError, decode, encode
from botfleet.protocol import messages as m
from botfleet.protocol.codec import request_body
from botfleet.protocol.joblogs import BulkLogRequest, BulkLogResponse, LogBatch
from botfleet.protocol.prefetch import ReleaseRequest, ReleaseResponse
from botfleet.tls import hung_up

log = logging.getLogger(__name__)

T = TypeVar("T")

# Extra time beyond `wait_ms` for a long-poll claim to come back.
LONG_POLL_GRACE_S = 5.0


class Api(Protocol):
    """What the bot asks of the coordinator (the HTTP client, or `bot.testing.FakeCoordinator`)."""

    def authenticate(self, token: str | None) -> None: ...

    async def register(self, request: m.RegisterRequest) -> m.RegisterResponse: ...

    async def heartbeat(self, bot_id: str, request: m.HeartbeatRequest) -> m.HeartbeatResponse: ...

    async def claim(self, request: m.ClaimRequest) -> m.ClaimResponse: ...

    async def complete(self, job_id: str, request: m.CompleteRequest) -> None: ...

    async def fail(self, job_id: str, request: m.FailRequest) -> None: ...

    async def report_batch(self, request: m.BatchReportRequest) -> m.BatchReportResponse: ...

    async def progress(self, job_id: str, request: m.ProgressRequest) -> None: ...

    async def logs(self, job_id: str, request: LogBatch) -> None: ...

    async def logs_bulk(self, request: BulkLogRequest) -> BulkLogResponse: ...

    async def deregister(self, bot_id: str, request: m.DeregisterRequest) -> None: ...

    async def release(self, request: ReleaseRequest) -> ReleaseResponse: ...


class HttpApi:
    """`Api` over HTTP. The session is the caller's (one per bot, closed by its owner)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        bases: Sequence[str],
        *,
        timeout_s: float,
        enroll_token: str | None = None,
        now: Callable[[], datetime] | None = None,
        client_certificate: bool = False,
        refuses_without_certificate: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        """`refuses_without_certificate(base)` tells, after registration lost its
        connection, whether the coordinator at `base` requires a client certificate
        (`bot.link.mtls`); None when the bot presents one, or talks no HTTPS."""
        if not bases:
            raise ValueError("at least one server base URL is needed")
        self._session = session
        self._bases = tuple(base.rstrip("/") for base in bases)
        self._active = 0
        self._timeout_s = timeout_s
        # One ClientTimeout per total (a few: plain calls, long-poll claims), not one per
        # call: a job makes two calls. Frozen, so shared safely.
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self._enroll_token = enroll_token
        self._token: str | None = None
        self._now = now or (lambda: datetime.now(UTC))
        self._client_certificate = client_certificate  # one is presented (mutual TLS)
        self._refuses_without_certificate = refuses_without_certificate

    @property
    def base(self) -> str:
        return self._bases[self._active]

    def authenticate(self, token: str | None) -> None:
        self._token = token

    # ------------------------------------------------------------ the calls

    async def register(self, request: m.RegisterRequest) -> m.RegisterResponse:
        data = await self._send("POST", "/bots/register", request, enrolling=True)
        return self._decode(data, m.RegisterResponse, "register")

    async def heartbeat(self, bot_id: str, request: m.HeartbeatRequest) -> m.HeartbeatResponse:
        data = await self._send("PUT", f"/bots/{quote(bot_id, safe='')}/heartbeat", request)
        return self._decode(data, m.HeartbeatResponse, "heartbeat")

    async def claim(self, request: m.ClaimRequest) -> m.ClaimResponse:
        extra = request.wait_ms / 1000.0 + LONG_POLL_GRACE_S if request.wait_ms else 0.0
        data = await self._send("POST", "/jobs/claim", request, timeout_s=self._timeout_s + extra)
        return self._decode(data, m.ClaimResponse, "claim")

    async def complete(self, job_id: str, request: m.CompleteRequest) -> None:
        await self._send("POST", f"/jobs/{quote(job_id, safe='')}/complete", request)

    async def fail(self, job_id: str, request: m.FailRequest) -> None:
        await self._send("POST", f"/jobs/{quote(job_id, safe='')}/fail", request)

    async def report_batch(self, request: m.BatchReportRequest) -> m.BatchReportResponse:
        data = await self._send("POST", "/jobs/report", request)
        return self._decode(data, m.BatchReportResponse, "report")

    async def progress(self, job_id: str, request: m.ProgressRequest) -> None:
        await self._send("POST", f"/jobs/{quote(job_id, safe='')}/progress", request)

    async def logs(self, job_id: str, request: LogBatch) -> None:
        await self._send("POST", f"/jobs/{quote(job_id, safe='')}/logs", request)

    async def logs_bulk(self, request: BulkLogRequest) -> BulkLogResponse:
        data = await self._send("POST", "/jobs/logs", request)
        return self._decode(data, BulkLogResponse, "logs")

    async def deregister(self, bot_id: str, request: m.DeregisterRequest) -> None:
        await self._send("DELETE", f"/bots/{quote(bot_id, safe='')}", request)

    async def release(self, request: ReleaseRequest) -> ReleaseResponse:
        data = await self._send("POST", "/jobs/release", request)
        return self._decode(data, ReleaseResponse, "release")

    # ------------------------------------------------------------ plumbing

    async def _send(
        self,
        method: str,
        path: str,
        body: m.Struct,
        *,
        enrolling: bool = False,
        timeout_s: float | None = None,
    ) -> bytes:
        """The body of a 2xx answer; anything else raises a `CoordinatorError`."""
        base = self.base
        url = base + path
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        # Registration takes the enrollment token only, never a (possibly expired) bot token.
        bearer = self._enroll_token if enrolling else self._token
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        timeout = self._timeout(timeout_s or self._timeout_s)
        payload = encode(body)
        data = request_body(payload)
        try:
            async with self._session.request(
                method, url, data=data, headers=headers, timeout=timeout
            ) as response:
                data = await response.read()
                status = response.status
                retry_after = response.headers.get("Retry-After")
        except aiohttp.ClientConnectorCertificateError as exc:
            raise TlsError(base, _certificate_reason(exc)) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            if enrolling and await self._requires_certificate(base, exc):
                raise ClientCertificateRequired(base) from None
            self._fail_over(base)
            detail = str(exc) or type(exc).__name__
            raise NetworkError(f"{method} {url}: {detail}{self._hint(base, exc)}") from exc
        if status >= 300:
            raise self._error(status, data, retry_after, f"{method} {url}")
        return data

    async def _requires_certificate(self, base: str, exc: BaseException) -> bool:
        """Whether a registration that lost its connection was refused for the client
        certificate this bot lacks: retrying could never help then."""
        probe = self._refuses_without_certificate
        return probe is not None and hung_up(exc) and await probe(base)

    def _hint(self, base: str, exc: BaseException) -> str:
        """A coordinator that requires client certificates hangs up on a bot without one
        (TLS 1.3 says so only after the handshake): name the likely cause."""
        if hung_up(exc) and base.startswith("https://") and not self._client_certificate:
            return " (if the coordinator requires client certificates, set BOT_CLIENT_CERT)"
        return ""

    def _timeout(self, total_s: float) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(total_s)
        if timeout is None:
            if len(self._timeouts) >= 16:  # totals vary only with settings; bound it anyway
                self._timeouts.clear()
            timeout = self._timeouts[total_s] = aiohttp.ClientTimeout(total=total_s)
        return timeout

    def _decode(self, data: bytes, answer: type[T], call: str) -> T:
        try:
            return decode(data, answer)
        except ProtocolError as exc:
            raise ServerError(200, f"{call}: unexpected answer from {self.base}: {exc}") from exc

    def _fail_over(self, failed_base: str) -> None:
        # Only the first of several calls failing on the same base moves on.
        if len(self._bases) > 1 and failed_base == self.base:
            self._active = (self._active + 1) % len(self._bases)
            log.warning("no answer from %s; switching to %s", failed_base, self.base)

    def _error(self, status: int, data: bytes, retry_after: str | None, what: str) -> HttpError:
        code, text = _error_body(data)
        message = f"{what}: {status} {text}".rstrip()
        if status in (429, 503):
            return OverloadedError(
                status, message, code=code, retry_after_s=parse_retry_after(retry_after, self._now)
            )
        if status == 413:
            limit = _LIMIT.search(text)
            return TooLargeError(
                status, message, code=code, limit_bytes=int(limit[1]) if limit else None
            )
        if status == 403 and code == "bot_revoked":
            return BotRevokedError(status, message, code=code)
        kind: type[HttpError] = _BY_STATUS.get(status) or (
            ServerError if status >= 500 else RejectedError
        )
        return kind(status, message, code=code)


_BY_STATUS: dict[int, type[HttpError]] = {
    401: AuthError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
}


def _certificate_reason(exc: aiohttp.ClientConnectorCertificateError) -> str:
    """`certificate verify failed: unable to get local issuer certificate`, without the
    OpenSSL source position."""
    error = exc.certificate_error
    reason = getattr(error, "verify_message", None) or str(error)
    return f"certificate verify failed: {reason}"


def _error_body(data: bytes) -> tuple[str | None, str]:
    try:
        error = decode(data, m.ErrorResponse).error
    except ProtocolError:
        return None, data[:200].decode("utf-8", "replace").strip()
    return error.code, f"{error.code}: {error.message}"


# How the coordinator's 413 names its limit ("request body too large (limit N bytes)").
_LIMIT = re.compile(r"limit (\d+) bytes")
_DELTA_SECONDS = re.compile(r"[-+]?\d+(\.\d*)?")


def parse_retry_after(value: str | None, now: Callable[[], datetime]) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return max(0.0, float(value))
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        log.warning("unreadable Retry-After %r ignored", value)
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds: float = (moment - now()).total_seconds()
    return max(0.0, seconds)
