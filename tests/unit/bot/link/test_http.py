"""The HTTP client: requests as the protocol says, answers decoded, failures mapped to errors."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.errors import (
    AuthError,
    BotRevokedError,
    ConflictError,
    ForbiddenError,
    NetworkError,
    NotFoundError,
    OverloadedError,
    RejectedError,
    ServerError,
    TlsError,
    TooLargeError,
)
from bot.link.http import HttpApi, parse_retry_after
from botfleet.protocol import messages as m

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ServerFactory = Callable[..., Awaitable[TestServer]]
NOW = datetime(2026, 1, 19, 10, 0, tzinfo=UTC)


class Recorder:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, Any], str | None]] = []

    async def record(self, request: web.Request) -> dict[str, Any]:
        body = await request.json() if request.can_read_body else {}
        self.requests.append(
            (request.method, request.path, body, request.headers.get("Authorization"))
        )
        return body


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def serve(aiohttp_server: ServerFactory, routes: dict[tuple[str, str], Handler]) -> str:
    app = web.Application()
    for (method, path), handler in routes.items():
        app.router.add_route(method, path, handler)
    server = await aiohttp_server(app)
    return str(server.make_url("/v1"))


def api_for(http: aiohttp.ClientSession, base: str | list[str], **options: Any) -> HttpApi:
    bases = [base] if isinstance(base, str) else base
    options.setdefault("timeout_s", 5.0)
    return HttpApi(http, bases, now=lambda: NOW, **options)


async def test_the_five_base_calls(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession
) -> None:
    seen = Recorder()

    async def register(request: web.Request) -> web.Response:
        await seen.record(request)
        return web.json_response(
            {"bot_id": "bot_1", "auth": {"access_token": "tok"}, "surprise": 1}, status=201
        )

    async def heartbeat(request: web.Request) -> web.Response:
        await seen.record(request)
        return web.json_response({"lease_until": "2026-01-19T10:02:00Z"})

    async def claim(request: web.Request) -> web.Response:
        await seen.record(request)
        return web.json_response(
            {"jobs": [{"id": "job_1", "op": "sum", "payload": {"a": 1, "b": 2}}]}
        )

    async def accepted(request: web.Request) -> web.Response:
        await seen.record(request)
        return web.json_response({"status": "accepted"})

    base = await serve(
        aiohttp_server,
        {
            ("POST", "/v1/bots/register"): register,
            ("PUT", "/v1/bots/{bot_id}/heartbeat"): heartbeat,
            ("POST", "/v1/jobs/claim"): claim,
            ("POST", "/v1/jobs/{job_id}/complete"): accepted,
            ("POST", "/v1/jobs/{job_id}/fail"): accepted,
        },
    )
    api = api_for(http, base + "/", enroll_token="enroll")

    registered = await api.register(
        m.RegisterRequest(bot_key="k", instance_id="i", version="1.0.0", capabilities=["sum"])
    )
    assert registered.bot_id == "bot_1" and registered.config is None
    api.authenticate("tok")
    beat = await api.heartbeat("bot_1", m.HeartbeatRequest(instance_id="i", state="idle"))
    assert beat.lease_until == "2026-01-19T10:02:00Z" and beat.cancel == []
    claimed = await api.claim(m.ClaimRequest(bot_id="bot_1", operations=["sum"], limit=2))
    assert [j.id for j in claimed.jobs] == ["job_1"] and claimed.jobs[0].attempt == 1
    await api.complete("job_1", m.CompleteRequest(instance_id="i", result={"result": 3}))
    await api.fail("job/2", m.FailRequest(instance_id="i", error="boom", retryable=False))

    methods = [(method, path, auth) for method, path, _, auth in seen.requests]
    assert methods == [
        ("POST", "/v1/bots/register", "Bearer enroll"),
        ("PUT", "/v1/bots/bot_1/heartbeat", "Bearer tok"),
        ("POST", "/v1/jobs/claim", "Bearer tok"),
        ("POST", "/v1/jobs/job_1/complete", "Bearer tok"),
        ("POST", "/v1/jobs/job/2/fail", "Bearer tok"),
    ]
    assert seen.requests[1][2]["state"] == "idle"
    assert seen.requests[4][2] == {
        "instance_id": "i",
        "attempt": None,
        "error": "boom",
        "retryable": False,
        "retry_after_ms": None,
    }


async def test_extension_calls(aiohttp_server: ServerFactory, http: aiohttp.ClientSession) -> None:
    seen = Recorder()

    async def report(request: web.Request) -> web.Response:
        body = await seen.record(request)
        return web.json_response(
            {"results": [{"job_id": r["job_id"], "status": "accepted"} for r in body["reports"]]}
        )

    async def ok(request: web.Request) -> web.Response:
        await seen.record(request)
        return web.Response(status=204)

    base = await serve(
        aiohttp_server,
        {
            ("POST", "/v1/jobs/report"): report,
            ("POST", "/v1/jobs/{job_id}/progress"): ok,
            ("DELETE", "/v1/bots/{bot_id}"): ok,
        },
    )
    api = api_for(http, base)
    answer = await api.report_batch(
        m.BatchReportRequest(
            instance_id="i", reports=[m.ReportItem(job_id="job_1", action="complete")]
        )
    )
    assert [(r.job_id, r.status) for r in answer.results] == [("job_1", "accepted")]
    await api.progress("job_1", m.ProgressRequest(instance_id="i", progress=0.5))
    await api.deregister("bot_1", m.DeregisterRequest(instance_id="i"))
    assert [(method, path) for method, path, _, _ in seen.requests] == [
        ("POST", "/v1/jobs/report"),
        ("POST", "/v1/jobs/job_1/progress"),
        ("DELETE", "/v1/bots/bot_1"),
    ]
    assert seen.requests[2][3] is None  # never authenticated: no header


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        (400, RejectedError, "invalid"),
        (401, AuthError, "unauthorized"),
        (403, ForbiddenError, "forbidden"),
        (403, BotRevokedError, "bot_revoked"),
        (404, NotFoundError, "not_found"),
        (409, ConflictError, "conflict"),
        (413, TooLargeError, "too_large"),
        (500, ServerError, "internal"),
        (502, ServerError, "bad_gateway"),
    ],
)
async def test_error_statuses_map_to_exceptions(
    aiohttp_server: ServerFactory,
    http: aiohttp.ClientSession,
    status: int,
    error: type[Exception],
    code: str,
) -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.json_response({"error": {"code": code, "message": "no way"}}, status=status)

    api = api_for(http, await serve(aiohttp_server, {("POST", "/v1/jobs/claim"): refuse}))
    with pytest.raises(error) as caught:
        await api.claim(m.ClaimRequest(bot_id="b", operations=["sum"]))
    assert caught.value.status == status  # type: ignore[attr-defined]
    assert caught.value.code == code  # type: ignore[attr-defined]
    assert f"{status} {code}: no way" in str(caught.value)


@pytest.mark.parametrize(
    ("message", "limit"),
    [("request body too large (limit 1048576 bytes)", 1048576), ("too big", None)],
)
async def test_413_says_the_limit_when_the_answer_does(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, message: str, limit: int | None
) -> None:
    async def refuse(request: web.Request) -> web.Response:
        error = {"code": "body_too_large", "message": message}
        return web.json_response({"error": error}, status=413)

    api = api_for(http, await serve(aiohttp_server, {("POST", "/v1/jobs/report"): refuse}))
    request = m.BatchReportRequest(
        instance_id="i", reports=[m.ReportItem(job_id="job_1", action="complete", result={})]
    )
    with pytest.raises(TooLargeError) as caught:
        await api.report_batch(request)
    assert caught.value.limit_bytes == limit and not caught.value.transient


@pytest.mark.parametrize(
    ("status", "retry_after", "seconds"),
    [(429, "3", 3.0), (503, None, None), (503, "soon", None), (429, "-5", 0.0)],
)
async def test_overload_carries_retry_after(
    aiohttp_server: ServerFactory,
    http: aiohttp.ClientSession,
    status: int,
    retry_after: str | None,
    seconds: float | None,
) -> None:
    async def busy(request: web.Request) -> web.Response:
        headers = {"Retry-After": retry_after} if retry_after else {}
        return web.Response(status=status, text="busy", headers=headers)

    api = api_for(http, await serve(aiohttp_server, {("POST", "/v1/jobs/claim"): busy}))
    with pytest.raises(OverloadedError) as caught:
        await api.claim(m.ClaimRequest(bot_id="b", operations=["sum"]))
    assert caught.value.retry_after_s == seconds
    assert caught.value.transient
    assert "busy" in str(caught.value)


def test_retry_after_as_http_date() -> None:
    later = format_datetime(datetime(2026, 1, 19, 10, 0, 30, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(later, lambda: NOW) == 30.0
    naive = "Mon, 19 Jan 2026 10:00:10 -0000"
    assert parse_retry_after(naive, lambda: NOW) == 10.0
    assert parse_retry_after("", lambda: NOW) is None


async def test_malformed_answer_is_a_server_error(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession
) -> None:
    async def broken(request: web.Request) -> web.Response:
        return web.Response(text='{"jobs": "not a list"}', content_type="application/json")

    api = api_for(http, await serve(aiohttp_server, {("POST", "/v1/jobs/claim"): broken}))
    with pytest.raises(ServerError, match="unexpected answer"):
        await api.claim(m.ClaimRequest(bot_id="b", operations=["sum"]))


async def test_unreachable_server_is_a_network_error_and_fails_over(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, unused_tcp_port: int
) -> None:
    async def claim(request: web.Request) -> web.Response:
        return web.json_response({"jobs": []})

    good = await serve(aiohttp_server, {("POST", "/v1/jobs/claim"): claim})
    dead = f"http://127.0.0.1:{unused_tcp_port}/v1"
    api = api_for(http, [dead, good])
    request = m.ClaimRequest(bot_id="b", operations=["sum"])

    with pytest.raises(NetworkError, match=str(unused_tcp_port)):
        await api.claim(request)
    assert api.base == good
    assert (await api.claim(request)).jobs == []


def held_until(hold: asyncio.Event) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A handler that answers only once `hold` is set (a coordinator that hangs)."""

    async def stuck(request: web.Request) -> web.Response:
        await hold.wait()
        return web.json_response({})

    return stuck


async def test_every_call_has_a_timeout(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession
) -> None:
    hold = asyncio.Event()
    stuck = held_until(hold)

    api = api_for(
        http, await serve(aiohttp_server, {("PUT", "/v1/bots/{b}/heartbeat"): stuck}), timeout_s=0.2
    )
    with pytest.raises(NetworkError, match="Timeout"):
        await api.heartbeat("b", m.HeartbeatRequest(instance_id="i"))
    hold.set()


async def test_long_poll_claim_waits_longer_than_the_timeout(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession
) -> None:
    seen: list[int] = []

    async def claim(request: web.Request) -> web.Response:
        body = json.loads(await request.text())
        seen.append(body["wait_ms"])
        await asyncio.sleep(body["wait_ms"] / 1000)  # the server holds the request
        return web.json_response({"jobs": []})

    api = api_for(
        http, await serve(aiohttp_server, {("POST", "/v1/jobs/claim"): claim}), timeout_s=0.1
    )
    answer = await api.claim(m.ClaimRequest(bot_id="b", operations=["sum"], wait_ms=300))
    assert answer.jobs == [] and seen == [300]


async def test_a_long_poll_claim_leaves_the_other_calls_their_own_timeout(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession
) -> None:
    hold = asyncio.Event()
    stuck = held_until(hold)

    async def claim(request: web.Request) -> web.Response:
        await asyncio.sleep(json.loads(await request.text())["wait_ms"] / 1000)
        return web.json_response({"jobs": []})

    routes = {("PUT", "/v1/bots/{b}/heartbeat"): stuck, ("POST", "/v1/jobs/claim"): claim}
    api = api_for(http, await serve(aiohttp_server, routes), timeout_s=0.2)
    for _ in range(2):  # the second time with the timeouts made the first time
        answer = await api.claim(m.ClaimRequest(bot_id="b", operations=["sum"], wait_ms=300))
        assert answer.jobs == []
        with pytest.raises(NetworkError, match="Timeout"):
            await api.heartbeat("b", m.HeartbeatRequest(instance_id="i"))
    hold.set()


def test_timeouts_are_kept_per_total_and_few() -> None:
    api = HttpApi(None, ["http://x/v1"], timeout_s=1)  # type: ignore[arg-type]
    for total in range(1, 40):
        assert api._timeout(float(total)).total == total
        assert api._timeout(float(total)) is api._timeout(float(total))
    assert len(api._timeouts) <= 16


def test_needs_a_base() -> None:
    with pytest.raises(ValueError, match="at least one"):
        HttpApi(None, [], timeout_s=1)  # type: ignore[arg-type]


async def test_an_unverifiable_certificate_is_a_tls_error(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)

    async def register(request: web.Request) -> web.Response:
        return web.json_response({"bot_id": "bot_1"}, status=201)

    app = web.Application()
    app.router.add_route("POST", "/v1/bots/register", register)
    server = await aiohttp_server(app, ssl=context)
    base = str(server.make_url("/v1"))
    assert base.startswith("https://")
    request = m.RegisterRequest(bot_key="k", instance_id="i", version="1.0.0", capabilities=[])
    with pytest.raises(TlsError) as caught:
        await api_for(http, base).register(request)  # the system's CAs do not know this one
    assert caught.value.server == base
    assert str(caught.value) == (
        f"cannot verify the certificate of {base}: certificate verify failed: "
        "unable to get local issuer certificate"
    )
    assert not caught.value.transient

    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusting)) as session:
        assert (await api_for(session, base).register(request)).bot_id == "bot_1"
