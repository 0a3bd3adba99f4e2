"""What a bot's run holds open to the outside: the coordinator client and the metrics endpoint.

Both are opened when `Bot.run()` has bootstrapped and closed when it ends, whatever ends it.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

import aiohttp

from bot.agent.metrics import MetricsServer, Observed
from bot.errors import SettingsError
from bot.link.http import Api, HttpApi
from bot.link.mtls import hangs_up_after_handshake
from bot.settings import Settings, tls_context
from botfleet.clock import Clock


@contextlib.asynccontextmanager
async def coordinator_client(
    settings: Settings,
    clock: Clock,
    *,
    api: Api | None = None,
    http: aiohttp.ClientSession | None = None,
) -> AsyncIterator[Api]:
    """`api` as it is (a fake), else an `HttpApi` over `http` (a session pointed at a test
    server) or over a session of its own, closed at the end (one given stays open)."""
    if api is not None:
        yield api
        return
    own = http is None
    context = tls_context(settings)
    session = http or aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context or True))
    # A bot without a client certificate can tell a coordinator that requires one.
    refuses: Callable[[str], Awaitable[bool]] | None = None
    if settings.client_cert is None and any(
        b.startswith("https://") for b in settings.server_bases
    ):
        refuses = partial(hangs_up_after_handshake, context=context or ssl.create_default_context())
    try:
        yield HttpApi(
            session,
            settings.server_bases,
            timeout_s=settings.request_timeout_s,
            enroll_token=settings.enroll_token,
            now=clock.now,
            client_certificate=settings.client_cert is not None,
            refuses_without_certificate=refuses,
        )
    finally:
        if own:
            await session.close()


@contextlib.asynccontextmanager
async def metrics_endpoint(bot: Observed, port: int | None) -> AsyncIterator[int | None]:
    """Serve the bot's metrics on `port` (None: not at all); yields the port listened on
    (port 0 picks a free one). A port it cannot listen on is a bad setting."""
    if port is None:
        yield None
        return
    server = MetricsServer(bot, port)
    try:
        await server.start()
    except OSError as exc:
        raise SettingsError("BOT_METRICS_PORT", f"cannot listen on {port}: {exc}") from exc
    try:
        yield server.port
    finally:
        await server.stop()
