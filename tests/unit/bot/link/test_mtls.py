"""A coordinator that requires client certificates, told from a connection lost by chance:
the probe, and registration halting on it rather than retrying for ever."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.agent import hints
from bot.errors import ClientCertificateRequired, NetworkError, TlsError
from bot.link.http import HttpApi
from bot.link.mtls import hangs_up_after_handshake
from botfleet.protocol import messages as m

ServerFactory = Callable[..., Awaitable[TestServer]]
REQUEST = m.RegisterRequest(bot_key="k", instance_id="i", version="1.0.0", capabilities=[])
# Long enough for a loaded machine; only the cases where nothing happens wait it out.
QUIET_S = 0.5


@dataclass(frozen=True)
class Pki:
    server: ssl.SSLContext  # serves 127.0.0.1
    mutual: ssl.SSLContext  # the same, requiring a client certificate
    trusting: ssl.SSLContext  # a caller trusting the server, with no certificate


@pytest.fixture(scope="module")
def pki() -> Pki:
    ca, client_ca = trustme.CA(), trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    mutual = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    for context in (server, mutual):
        ca.issue_cert("127.0.0.1").configure_cert(context)
    client_ca.configure_trust(mutual)
    mutual.verify_mode = ssl.CERT_REQUIRED
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    return Pki(server, mutual, trusting)


async def registered(request: web.Request) -> web.Response:
    return web.json_response({"bot_id": "bot_1"}, status=201)


async def https_base(aiohttp_server: ServerFactory, context: ssl.SSLContext) -> str:
    app = web.Application()
    app.router.add_route("POST", "/v1/bots/register", registered)
    app.router.add_route("PUT", "/v1/bots/{bot_id}/heartbeat", registered)
    server = await aiohttp_server(app, ssl=context)
    return str(server.make_url("/v1"))


async def test_the_probe_tells_a_server_requiring_a_certificate(
    aiohttp_server: ServerFactory, pki: Pki
) -> None:
    base = await https_base(aiohttp_server, pki.mutual)
    assert await hangs_up_after_handshake(base, pki.trusting)


async def test_the_probe_lets_a_server_waiting_for_a_request_be(
    aiohttp_server: ServerFactory, pki: Pki
) -> None:
    base = await https_base(aiohttp_server, pki.server)
    assert not await hangs_up_after_handshake(base, pki.trusting, within_s=QUIET_S)


async def test_the_probe_is_sure_of_nothing_else(aiohttp_server: ServerFactory, pki: Pki) -> None:
    plain = await aiohttp_server(web.Application())
    assert not await hangs_up_after_handshake(str(plain.make_url("/v1")), pki.trusting)
    closed = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
    port = closed.sockets[0].getsockname()[1]
    closed.close()
    await closed.wait_closed()
    assert not await hangs_up_after_handshake(f"https://127.0.0.1:{port}/v1", pki.trusting)
    untrusted = ssl.create_default_context()  # the handshake itself fails: another fault
    base = await https_base(aiohttp_server, pki.mutual)
    assert not await hangs_up_after_handshake(base, untrusted)


def api(session: aiohttp.ClientSession, base: str, pki: Pki) -> HttpApi:
    async def refuses(probed: str) -> bool:
        return await hangs_up_after_handshake(probed, pki.trusting, within_s=QUIET_S)

    return HttpApi(session, [base], timeout_s=5.0, refuses_without_certificate=refuses)


async def test_registration_without_the_required_certificate_is_refused_for_good(
    aiohttp_server: ServerFactory, pki: Pki
) -> None:
    base = await https_base(aiohttp_server, pki.mutual)
    connector = aiohttp.TCPConnector(ssl=pki.trusting)
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(ClientCertificateRequired) as caught:
            await api(session, base, pki).register(REQUEST)
        # Any other call losing its connection stays a network fault (retried), unprobed.
        with pytest.raises(NetworkError):
            await api(session, base, pki).heartbeat("bot_1", m.HeartbeatRequest(instance_id="i"))
    error = caught.value
    assert isinstance(error, TlsError) and not error.transient
    assert str(error) == (
        f"the coordinator at {base} requires a client certificate (mutual TLS) and this bot "
        "presents none"
    )
    assert "Set BOT_CLIENT_CERT" in str(hints.untrusted(error))


async def test_a_connection_lost_by_chance_is_still_retried(
    aiohttp_server: ServerFactory, pki: Pki
) -> None:
    async def hang_up(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.close()
        raise ConnectionResetError  # the connection is gone: no answer

    app = web.Application()
    app.router.add_route("POST", "/v1/bots/register", hang_up)
    server = await aiohttp_server(app, ssl=pki.server)
    base = str(server.make_url("/v1"))
    connector = aiohttp.TCPConnector(ssl=pki.trusting)
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(NetworkError) as caught:
            await api(session, base, pki).register(REQUEST)
    assert caught.value.transient
