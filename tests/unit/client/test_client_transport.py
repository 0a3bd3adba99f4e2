"""Retries and answers against a small fake coordinator; the pauses go to a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from botfleet.client import (
    ApiError,
    AsyncClient,
    Client,
    ConnectionFailed,
    Forbidden,
    RetryPolicy,
    Unavailable,
    UnexpectedAnswer,
)
from botfleet.clock import FakeClock
from tests.support.processes import free_port


def _job(job_id: str, state: str = "queued") -> dict[str, Any]:
    return {
        "id": job_id, "op": "sum", "payload": {}, "state": state, "attempt": 1,
        "max_attempts": 3, "created_at": "2026-01-19T10:00:00Z",
    }  # fmt: skip


class Fake:
    """Answers by path; `drop` closes that many connections without an answer first."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.drop = 0
        self.shed: list[tuple[int, str]] = []  # (status, Retry-After) answers to give first

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._faults])
        app.router.add_get("/v1/jobs", self._list)
        app.router.add_get("/v1/jobs/{id}", self._job)
        app.router.add_post("/v1/jobs/{id}/cancel", self._job)
        app.router.add_get("/v1/stats", self._not_stats)
        app.router.add_get("/v1/bots", self._html)
        app.router.add_get("/v1/bots/{id}", self._forbidden)
        return app

    @web.middleware
    async def _faults(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        self.seen.append((request.method, request.path, dict(request.query)))
        if self.drop:
            self.drop -= 1
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=499)
        if self.shed:
            status, after = self.shed.pop(0)
            body = {"error": {"code": "overloaded", "message": "busy"}}
            return web.json_response(body, status=status, headers={"Retry-After": after})
        response: web.StreamResponse = await handler(request)
        return response

    async def _job(self, request: web.Request) -> web.Response:
        return web.json_response(_job(request.match_info["id"]))

    async def _list(self, request: web.Request) -> web.Response:
        """Endless pages of two jobs: the n-th page's cursor is n."""
        page = int(request.query.get("cursor", "0"))
        jobs = [_job(f"job_{page}_{n}") for n in range(2)]
        return web.json_response({"jobs": jobs, "next_cursor": str(page + 1)})

    async def _not_stats(self, request: web.Request) -> web.Response:
        return web.json_response({"jobs": "not a mapping"})

    async def _html(self, request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>bad gateway</html>\n")

    async def _forbidden(self, request: web.Request) -> web.Response:
        body = {"error": {"code": "forbidden", "message": "not yours"}}
        return web.json_response(body, status=403)


@pytest.fixture
def fake() -> Fake:
    return Fake()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def client(
    fake: Fake, clock: FakeClock, aiohttp_server: Callable[..., Any]
) -> AsyncIterator[AsyncClient]:
    server: TestServer = await aiohttp_server(fake.app())
    policy = RetryPolicy(connect_retries=3, base_s=0.1, cap_s=0.3, shed_retries=2)
    url = str(server.make_url(""))
    async with AsyncClient(url, token="t", retry=policy, clock=clock, environ={}) as aio:
        yield aio


async def test_refused_connections_back_off_then_fail(clock: FakeClock) -> None:
    server = f"http://127.0.0.1:{free_port()}"
    policy = RetryPolicy(connect_retries=4, base_s=0.1, cap_s=0.3)
    async with AsyncClient(server, retry=policy, clock=clock, environ={}) as client:
        with pytest.raises(ConnectionFailed) as failed:
            await client.cancel("job_1")  # not idempotent, but it never left: retried
        assert await client.ready() is False
    assert str(failed.value) == f"cannot reach the coordinator at {server} (connection refused)"
    assert failed.value.before_sending
    assert len(clock.slept) == 4
    ceilings = (0.1, 0.2, 0.3, 0.3)
    assert all(0 <= pause <= top for pause, top in zip(clock.slept, ceilings, strict=True))


async def test_lost_answers_are_retried_for_idempotent_calls_only(
    client: AsyncClient, fake: Fake, clock: FakeClock
) -> None:
    fake.drop = 2
    assert (await client.get("job_1")).id == "job_1"
    assert [path for _, path, _ in fake.seen] == ["/v1/jobs/job_1"] * 3
    # aiohttp itself repeats an idempotent request once on a reused connection it finds
    # dropped, so some of the three attempts may be its own, without a pause.
    assert 1 <= len(clock.slept) <= 2
    fake.drop = 1
    with pytest.raises(
        ConnectionFailed, match=r"lost the connection .* POST /v1/jobs/job_2/cancel"
    ):
        await client.cancel("job_2")
    assert [path for _, path, _ in fake.seen].count("/v1/jobs/job_2/cancel") == 1
    fake.drop = 10
    with pytest.raises(ConnectionFailed):
        await client.get("job_3")
    assert [path for _, path, _ in fake.seen].count("/v1/jobs/job_3") >= 4  # 1 + 3 retries


async def test_shedding_waits_retry_after_then_gives_up(
    client: AsyncClient, fake: Fake, clock: FakeClock
) -> None:
    fake.shed = [(503, "2"), (429, "0.5")]
    assert (await client.get("job_1")).id == "job_1"
    assert clock.slept == [2.0, 0.5]
    fake.shed = [(503, "1")] * 3
    with pytest.raises(Unavailable) as unavailable:
        await client.cancel("job_1")  # shed requests were not acted on: safe to repeat
    assert (unavailable.value.status, unavailable.value.code) == (503, "overloaded")
    assert clock.slept == [2.0, 0.5, 1.0, 1.0]


async def test_wait_ms_is_passed_and_capped(client: AsyncClient, fake: Fake) -> None:
    await client.get("job_2", wait_ms=90_000)
    assert fake.seen[-1] == ("GET", "/v1/jobs/job_2", {"wait_ms": "30000"})
    await client.get("job_2")
    assert fake.seen[-1] == ("GET", "/v1/jobs/job_2", {})


async def test_odd_answers(client: AsyncClient) -> None:
    with pytest.raises(
        UnexpectedAnswer, match=r"unexpected answer from GET /v1/stats \(HTTP 200\)"
    ):
        await client.stats()
    with pytest.raises(ApiError) as gateway:
        await client.bots()
    assert (gateway.value.status, gateway.value.code) == (502, "http_error")
    assert gateway.value.message == "<html>bad gateway</html>"
    with pytest.raises(Forbidden) as forbidden:
        await client.bot("bot_1")
    assert (forbidden.value.code, forbidden.value.message) == ("forbidden", "not yours")


async def test_ids_are_one_path_segment(client: AsyncClient, fake: Fake) -> None:
    await client.get("job/../x y")
    assert fake.seen[-1][1] == "/v1/jobs/job/../x y"  # aiohttp decodes; it reached {id}


def test_the_blocking_client_works_inside_a_running_loop() -> None:
    import asyncio

    async def inside() -> bool:
        server = f"http://127.0.0.1:{free_port()}"
        with Client(server, retry=RetryPolicy(connect_retries=0), environ={}) as client:
            return client.ready()  # blocks this loop briefly; its own loop does the work

    assert asyncio.run(inside()) is False


async def test_the_blocking_client_closes_cleanly(
    fake: Fake, aiohttp_server: Callable[..., Any]
) -> None:
    import asyncio
    import itertools

    server: TestServer = await aiohttp_server(fake.app())
    client = Client(str(server.make_url("")), token="t", environ={})

    def use() -> list[str]:
        first = [view.id for view in itertools.islice(client.jobs(page_size=2), 5)]
        abandoned = client.jobs()
        next(abandoned)
        client.close()
        client.close()  # again: nothing happens
        abandoned.close()  # its async generator's loop is gone: no wait, no error
        with pytest.raises(RuntimeError, match="closed"):
            client.stats()
        return first

    first = await asyncio.to_thread(use)
    assert first == ["job_0_0", "job_0_1", "job_1_0", "job_1_1", "job_2_0"]
    cursors = [query.get("cursor") for _, path, query in fake.seen if path == "/v1/jobs"]
    assert cursors == [None, "1", "2", None]  # stopped after the third page; then one more
