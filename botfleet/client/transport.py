"""One HTTP call to the coordinator, retried where that is safe, answered as a struct.

Retried: a connection error before the request left (the coordinator saw nothing),
any connection error or timeout of an idempotent call (reads, PATCH, and submits,
which always carry an idempotency key), with exponential backoff; and a 429/503,
which the coordinator sends only for requests it did not act on, after `Retry-After`.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp

from botfleet.client.errors import CertificateFailed, ConnectionFailed, UnexpectedAnswer, api_error
from botfleet.client.retry import SHED_STATUSES, RetryPolicy
from botfleet.client.settings import Settings
from botfleet.clock import Clock
from botfleet.protocol import messages as m
from botfleet.protocol.codec import ProtocolError, decode, encode, request_body
from botfleet.tls import hung_up

T = TypeVar("T")

log = logging.getLogger("botfleet.client")


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: bytes
    headers: Mapping[str, str]


class Transport:
    """Owns the keep-alive session (opened on first use, on the running loop)."""

    def __init__(
        self, settings: Settings, policy: RetryPolicy, clock: Clock, rng: random.Random
    ) -> None:
        self.settings = settings
        self._policy = policy
        self._clock = clock
        self._rng = rng
        self._session: aiohttp.ClientSession | None = None
        self._headers = {"Content-Type": "application/json"}
        if settings.token:
            self._headers["Authorization"] = f"Bearer {settings.token}"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self.settings.ssl_context() or True)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def call(
        self,
        method: str,
        path: str,
        kind: type[T],
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        wait_s: float = 0.0,
        idempotent: bool = True,
    ) -> T:
        data = encode(body) if body is not None else None
        connect_retries = shed_retries = 0
        while True:
            try:
                answer = await self._send(method, path, data, params, wait_s)
            except ConnectionFailed as failure:
                safe = failure.before_sending or idempotent
                if (
                    not safe
                    or isinstance(failure, CertificateFailed)
                    or connect_retries >= self._policy.connect_retries
                ):
                    raise
                connect_retries += 1
                pause_s = self._policy.backoff_s(connect_retries, self._rng)
                log.debug("%s; retry %d in %.2f s", failure, connect_retries, pause_s)
                await self._clock.sleep(pause_s)
                continue
            if answer.status in SHED_STATUSES and shed_retries < self._policy.shed_retries:
                shed_retries += 1
                await self._clock.sleep(self._policy.retry_after_s(answer.headers))
                continue
            if answer.status >= 400:
                raise _error(answer)
            try:
                return decode(answer.body, kind)
            except ProtocolError as exc:
                raise UnexpectedAnswer(
                    f"unexpected answer from {method} {path} (HTTP {answer.status}): {exc}"
                ) from None

    async def ready(self) -> bool:
        """`GET /readyz` (no token), once: whether the coordinator reaches its store."""
        try:
            answer = await self._send("GET", "/readyz", None, None, 0.0)
        except ConnectionFailed as exc:
            log.debug("readyz: %s", exc)
            return False
        return answer.status == 200

    async def _send(
        self,
        method: str,
        path: str,
        data: bytes | None,
        params: Mapping[str, str] | None,
        wait_s: float,
    ) -> _Answer:
        server = self.settings.server
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s + wait_s)
        try:
            async with self._open().request(
                method,
                server + path,
                data=None if data is None else request_body(data),
                params=params,
                headers=self._headers,
                timeout=timeout,
            ) as response:
                return _Answer(response.status, await response.read(), response.headers)
        except aiohttp.ClientConnectorCertificateError as exc:
            raise CertificateFailed(server, _certificate_reason(exc)) from None
        except aiohttp.ClientConnectorError as exc:
            raise ConnectionFailed(
                f"cannot reach the coordinator at {server} ({_reason(exc)})",
                server=server,
                before_sending=True,
            ) from None
        except TimeoutError:
            raise ConnectionFailed(
                f"the coordinator at {server} did not answer {method} {path} "
                f"within {timeout.total:g} s",
                server=server,
                before_sending=False,
            ) from None
        except aiohttp.ClientError as exc:
            raise ConnectionFailed(
                f"lost the connection to the coordinator at {server} "
                f"during {method} {path}: {exc or type(exc).__name__}{self._mtls_hint(exc)}",
                server=server,
                before_sending=False,
            ) from None

    def _mtls_hint(self, exc: aiohttp.ClientError) -> str:
        """A coordinator that requires client certificates hangs up on a caller without one
        (TLS 1.3 says so only after the handshake): name the likely cause."""
        settings = self.settings
        if hung_up(exc) and settings.server.startswith("https://") and settings.client_cert is None:
            return (
                " (if it requires client certificates, give one: client_cert=, "
                "--client-cert or BOTFLEET_CLIENT_CERT)"
            )
        return ""


def _certificate_reason(exc: aiohttp.ClientConnectorCertificateError) -> str:
    """`certificate verify failed: …`, without OpenSSL's source position."""
    error = exc.certificate_error
    return f"certificate verify failed: {getattr(error, 'verify_message', None) or error}"


def _reason(exc: aiohttp.ClientConnectorError) -> str:
    inner = exc.os_error
    if inner is None:
        return str(exc)
    if inner.errno:
        return os.strerror(inner.errno).lower()
    return inner.strerror or str(inner)


def _error(answer: _Answer) -> Exception:
    try:
        body = decode(answer.body, m.ErrorResponse).error
    except ProtocolError:
        text = answer.body.decode("utf-8", errors="replace").strip().splitlines()
        return api_error(answer.status, "http_error", text[0][:200] if text else "no details")
    return api_error(answer.status, body.code, body.message)


def segment(identifier: str) -> str:
    """`identifier` quoted as one path segment (an id or a name may hold a slash)."""
    return quote(identifier, safe="")
