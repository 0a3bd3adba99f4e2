"""A fault-injecting HTTP proxy for end-to-end tests: bots -> proxy -> coordinator.

It listens on loopback only and forwards to a loopback coordinator. For a share of
requests, drawn from a seeded RNG, it:

- drops the connection before forwarding (the coordinator never sees the request),
- drops it after forwarding (the coordinator acted, the answer is lost),
- delays the request (by `min_delay_s` to `max_delay_s`),
- answers 503 with `Retry-After` itself (load shedding).

`cut(seconds)` cuts the network for a while: every request in flight and every new
one is dropped until the cut ends. `tokens` holds every bearer token that passed
through it (requests' Authorization, registration answers' access_token), for a test
that looks for secrets where they must not be. The proxy runs its own event loop in a thread, so
a test can block (wait for processes, poll over HTTP) while it works; every method
is safe to call from the test's thread.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

# Headers a proxy must not pass on (hop by hop), plus those aiohttp sets itself.
_SKIP_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade"}
)


@dataclass(frozen=True, slots=True)
class Faults:
    drop_before: float = 0.0  # share of requests dropped before reaching the coordinator
    drop_after: float = 0.0  # share whose answer is lost after the coordinator handled them
    delay: float = 0.0  # share delayed by `min_delay_s` to `max_delay_s`
    max_delay_s: float = 0.05
    min_delay_s: float = 0.0
    overload: float = 0.0  # share answered 503 by the proxy
    retry_after_s: int | None = 1  # its `Retry-After` (None: left out)


class FaultProxy:
    def __init__(self, target: str, faults: Faults, seed: int) -> None:
        host = urlsplit(target).hostname or ""
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the fault proxy forwards to loopback only, not {target}")
        self.target = target.rstrip("/")
        self.faults = faults
        self.counts: Counter[str] = Counter()  # what the proxy did, for the test to read
        self.tokens: set[str] = set()
        self._rng = random.Random(seed)
        self._cut_until = 0.0  # time.monotonic() until which the network is cut
        self._in_flight: set[asyncio.Transport] = set()
        self._handlers: set[asyncio.Task[Any]] = set()  # requests being handled (or delayed)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="faultproxy")
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self.port = 0

    # ------------------------------------------------------------ control (any thread)

    def start(self) -> FaultProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
        self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        return f"{self.url}/v1"

    def cut(self, seconds: float) -> None:
        """Drop every request, in flight or new, for `seconds` from now."""
        self._loop.call_soon_threadsafe(self._cut, seconds)

    @property
    def is_cut(self) -> bool:
        return time.monotonic() < self._cut_until

    # ------------------------------------------------------------ the proxy (its loop)

    async def _start(self) -> None:
        self._client = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=120), auto_decompress=False
        )
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def _stop(self) -> None:
        # The client first: requests still held upstream (long-poll claims) end at once.
        if self._client is not None:
            await self._client.close()
        # Requests still delayed end now, not as tasks destroyed with the loop.
        for handler in list(self._handlers):
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()

    def _cut(self, seconds: float) -> None:
        self._cut_until = max(self._cut_until, time.monotonic() + seconds)
        self.counts["cuts"] += 1
        for transport in list(self._in_flight):
            transport.abort()

    def _roll(self, share: float) -> bool:
        return share > 0 and self._rng.random() < share

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        transport = request.transport
        if transport is None or self.is_cut:
            return self._drop(request, "cut")
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
        self._in_flight.add(transport)
        try:
            return await self._forward(request)
        finally:
            self._in_flight.discard(transport)
            self._handlers.discard(handler)

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        faults = self.faults
        body = await request.read()
        if self._roll(faults.overload):
            self.counts["overload"] += 1
            retry_after = faults.retry_after_s
            return web.json_response(
                {"error": {"code": "overloaded", "message": "shedding load (fault proxy)"}},
                status=503,
                headers={} if retry_after is None else {"Retry-After": str(retry_after)},
            )
        if self._roll(faults.drop_before):
            return self._drop(request, "drop_before")
        if self._roll(faults.delay):
            self.counts["delay"] += 1
            await asyncio.sleep(self._rng.uniform(faults.min_delay_s, faults.max_delay_s))
        drop_after = self._roll(faults.drop_after)
        assert self._client is not None
        if self._client.closed:  # the proxy stopped while this request was delayed
            return self._drop(request, "stopping")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _SKIP_HEADERS}
        self._note_token(request.headers.get("Authorization", "").partition(" ")[2])
        try:
            async with self._client.request(
                request.method, self.target + request.path_qs, data=body, headers=headers
            ) as upstream:
                data = await upstream.read()
                status = upstream.status
                kept = {k: v for k, v in upstream.headers.items() if k.lower() not in _SKIP_HEADERS}
        except (aiohttp.ClientError, TimeoutError):
            return self._drop(request, "upstream_failed")
        if self.is_cut:
            return self._drop(request, "cut")
        if drop_after:
            return self._drop(request, "drop_after")
        self.counts["forwarded"] += 1
        if request.path.endswith("/bots/register") and status == 201:
            self._note_token(json.loads(data)["auth"]["access_token"])
        return web.Response(status=status, body=data, headers=kept)

    def _note_token(self, token: str) -> None:
        if token.strip():
            self.tokens.add(token.strip())

    def _drop(self, request: web.Request, why: str) -> web.StreamResponse:
        """Close the connection without an answer (the client sees a reset)."""
        self.counts[why] += 1
        if request.transport is not None:
            request.transport.abort()
        # Never sent: the connection is gone. aiohttp needs a response object all the same.
        return web.Response(status=499)


def summary(proxy: FaultProxy) -> dict[str, Any]:
    return dict(sorted(proxy.counts.items()))
