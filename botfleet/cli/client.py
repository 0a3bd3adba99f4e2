"""A small typed client for the producer and operator API (admin token)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp

from botfleet.cli.errors import ApiError, CliError, ServerUnreachable, UsageError
from botfleet.cli.settings import ClientSettings
from botfleet.protocol import messages as m
from botfleet.protocol.codec import ProtocolError, decode, encode

T = TypeVar("T")

log = logging.getLogger(__name__)

BULK_LIMIT = 1000  # the protocol: POST /v1/jobs/bulk takes at most 1000 jobs
MAX_WAIT_MS = 30_000  # the protocol: GET /v1/jobs/{id}?wait_ms= at most 30000
_SHED_STATUSES = frozenset({429, 503})
_SHED_RETRIES = 5
_MAX_RETRY_AFTER_S = 10.0


class OperatorClient:
    """One method per operator call; errors become `ApiError` or `ServerUnreachable`."""

    def __init__(self, session: aiohttp.ClientSession, settings: ClientSettings) -> None:
        self._session = session
        self._settings = settings
        self._headers = {
            "Authorization": f"Bearer {settings.admin_token}",
            "Content-Type": "application/json",
        }

    @classmethod
    @asynccontextmanager
    async def connect(cls, settings: ClientSettings) -> AsyncIterator[OperatorClient]:
        async with aiohttp.ClientSession() as session:
            yield cls(session, settings)

    @property
    def server(self) -> str:
        return self._settings.server

    # ------------------------------------------------------------ jobs

    async def submit(self, job: m.SubmitJob) -> m.SubmitResponse:
        return await self._call("POST", "/v1/jobs", m.SubmitResponse, body=job)

    async def submit_bulk(self, jobs: Sequence[m.SubmitJob]) -> m.BulkSubmitResponse:
        if not 1 <= len(jobs) <= BULK_LIMIT:
            raise ValueError(f"a bulk submission holds 1..{BULK_LIMIT} jobs, not {len(jobs)}")
        request = m.BulkSubmitRequest(jobs=list(jobs))
        return await self._call("POST", "/v1/jobs/bulk", m.BulkSubmitResponse, body=request)

    async def job(self, job_id: str, wait_ms: int = 0) -> m.JobView:
        params: dict[str, str] = {}
        extra_s = 0.0
        if wait_ms > 0:
            wait_ms = min(wait_ms, MAX_WAIT_MS)
            params["wait_ms"] = str(wait_ms)
            extra_s = wait_ms / 1000
        path = f"/v1/jobs/{_segment(job_id)}"
        return await self._call("GET", path, m.JobView, params=params, extra_timeout_s=extra_s)

    async def jobs(
        self,
        state: str | None = None,
        op: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> m.JobList:
        params = {
            key: str(value)
            for key, value in (("state", state), ("op", op), ("limit", limit), ("cursor", cursor))
            if value is not None
        }
        return await self._call("GET", "/v1/jobs", m.JobList, params=params)

    async def cancel(self, job_id: str) -> m.JobView:
        return await self._call("POST", f"/v1/jobs/{_segment(job_id)}/cancel", m.JobView)

    async def retry(self, job_id: str) -> m.JobView:
        return await self._call("POST", f"/v1/jobs/{_segment(job_id)}/retry", m.JobView)

    # ------------------------------------------------------------ bots and stats

    async def bots(self) -> m.BotList:
        return await self._call("GET", "/v1/bots", m.BotList)

    async def bot(self, bot_id: str) -> m.BotView:
        return await self._call("GET", f"/v1/bots/{_segment(bot_id)}", m.BotView)

    async def patch_bot(self, bot_id: str, patch: m.PatchBotRequest) -> m.BotView:
        path = f"/v1/bots/{_segment(bot_id)}"
        return await self._call("PATCH", path, m.BotView, body=patch)

    async def stats(self) -> m.Stats:
        return await self._call("GET", "/v1/stats", m.Stats)

    async def ready(self) -> bool:
        """`GET /readyz` (no token): whether the coordinator answers and reaches its store."""
        try:
            async with self._session.get(
                self._settings.server + "/readyz",
                timeout=aiohttp.ClientTimeout(total=self._settings.timeout_s),
            ) as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.debug("readyz: %s", exc)
            return False

    # ------------------------------------------------------------ plumbing

    async def _call(
        self,
        method: str,
        path: str,
        kind: type[T],
        body: Any = None,
        params: Mapping[str, str] | None = None,
        extra_timeout_s: float = 0.0,
    ) -> T:
        data = encode(body) if body is not None else None
        for attempt in range(_SHED_RETRIES + 1):
            status, payload, retry_after_s = await self._send(
                method, path, data, params, extra_timeout_s
            )
            if status in _SHED_STATUSES and attempt < _SHED_RETRIES:
                # The coordinator sheds load and says when to come back; a person at a
                # terminal would rather wait a little than see the command fail.
                await asyncio.sleep(retry_after_s)
                continue
            if status >= 400:
                raise _api_error(status, payload)
            try:
                return decode(payload, kind)
            except ProtocolError as exc:
                raise CliError(
                    f"unexpected answer from {method} {path} (HTTP {status}): {exc}"
                ) from None
        raise AssertionError("unreachable: the loop returns or raises")

    async def _send(
        self,
        method: str,
        path: str,
        data: bytes | None,
        params: Mapping[str, str] | None,
        extra_timeout_s: float,
    ) -> tuple[int, bytes, float]:
        url = self._settings.server + path
        timeout = aiohttp.ClientTimeout(total=self._settings.timeout_s + extra_timeout_s)
        try:
            async with self._session.request(
                method, url, data=data, params=params, headers=self._headers, timeout=timeout
            ) as response:
                payload = await response.read()
                return response.status, payload, _retry_after(response.headers)
        except aiohttp.InvalidURL:
            raise UsageError(f"--server: {self._settings.server!r} is not a valid URL") from None
        except aiohttp.ClientConnectorError as exc:
            raise ServerUnreachable(
                f"cannot reach the coordinator at {self._settings.server} ({_reason(exc)}); "
                "is `botfleet server` running? (set --server or BOTFLEET_SERVER)"
            ) from None
        except TimeoutError:
            raise ServerUnreachable(
                f"the coordinator at {self._settings.server} did not answer {method} {path} "
                f"within {timeout.total:g} s"
            ) from None
        except aiohttp.ClientError as exc:
            raise ServerUnreachable(
                f"lost the connection to the coordinator at {self._settings.server} "
                f"during {method} {path}: {exc or type(exc).__name__}"
            ) from None


def _segment(identifier: str) -> str:
    return quote(identifier, safe="")


def _retry_after(headers: Mapping[str, str]) -> float:
    try:
        seconds = float(headers.get("Retry-After", "1"))
    except ValueError:
        seconds = 1.0
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER_S)


def _reason(exc: aiohttp.ClientConnectorError) -> str:
    inner = exc.os_error
    if inner is None:
        return str(exc)
    if inner.errno:
        return os.strerror(inner.errno).lower()
    return inner.strerror or str(inner)


def _api_error(status: int, payload: bytes) -> ApiError:
    try:
        body = decode(payload, m.ErrorResponse).error
    except ProtocolError:
        text = payload.decode("utf-8", errors="replace").strip().splitlines()
        return ApiError(status, "http_error", text[0][:200] if text else "no details")
    return ApiError(status, body.code, body.message)
