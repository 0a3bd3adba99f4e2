"""The command line's client (botfleet.client, as `connect` sets it up) against a small fake
coordinator: answers, errors as the command line words them, retries, waiting."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from botfleet.cli.errors import ApiError, CliError, ServerUnreachable, from_client
from botfleet.cli.settings import ClientSettings, connect
from botfleet.cli.waiting import wait_for_jobs
from botfleet.client import AsyncClient, BotfleetError, ConnectionFailed
from botfleet.client import Conflict as ClientConflict
from botfleet.client import NotFound as ClientNotFound
from botfleet.protocol import messages as m
from botfleet.protocol.codec import encode

TOKEN = "admin-secret"


def _job(job_id: str, state: str = "queued", **extra: Any) -> dict[str, Any]:
    return {
        "id": job_id, "op": "sum", "payload": {"a": 1, "b": 2}, "state": state, "attempt": 1,
        "max_attempts": 3, "created_at": "2026-01-19T10:00:00Z", **extra,
    }  # fmt: skip


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


class FakeCoordinator:
    """Just enough of the operator API; each job turns terminal after `polls_until_done` GETs."""

    def __init__(self, polls_until_done: int = 2) -> None:
        self.polls_until_done = polls_until_done
        self.polls: dict[str, int] = {}
        self.requests: list[tuple[str, str, Mapping[str, str]]] = []
        self.shed_next = 0
        self.bodies: list[Any] = []

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_post("/v1/jobs", self._submit)
        app.router.add_post("/v1/jobs/bulk", self._bulk)
        app.router.add_get("/v1/jobs/{id}", self._get)
        app.router.add_post("/v1/jobs/{id}/cancel", self._cancel)
        app.router.add_get("/v1/stats", self._broken)
        app.router.add_get("/v1/bots", self._html_error)
        app.router.add_get("/readyz", self._ready)
        return app

    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        self.requests.append((request.method, request.path, dict(request.query)))
        if request.path.startswith("/v1/"):
            if request.headers.get("Authorization") != f"Bearer {TOKEN}":
                return _error(401, "unauthorized", "bad admin token")
            if self.shed_next:
                self.shed_next -= 1
                return web.json_response(
                    {"error": {"code": "overloaded", "message": "busy"}},
                    status=503,
                    headers={"Retry-After": "0"},
                )
        response: web.StreamResponse = await handler(request)
        return response

    async def _submit(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        return web.json_response({"id": "job_1", "state": "queued"}, status=201)

    async def _bulk(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.bodies.append(body)
        ids = [f"job_{i}" for i in range(len(body["jobs"]))]
        return web.json_response({"ids": ids}, status=201)

    async def _get(self, request: web.Request) -> web.Response:
        job_id = request.match_info["id"]
        if job_id == "job_missing":
            return _error(404, "not_found", f"no job {job_id}")
        self.polls[job_id] = self.polls.get(job_id, 0) + 1
        if self.polls[job_id] < self.polls_until_done:
            return web.json_response(_job(job_id, "running"))
        if job_id.endswith("7"):
            return web.json_response(_job(job_id, "failed", error="boom"))
        return web.json_response(_job(job_id, "succeeded", result={"result": 3}))

    async def _cancel(self, request: web.Request) -> web.Response:
        return _error(409, "conflict", "job already terminal")

    async def _broken(self, request: web.Request) -> web.Response:
        return web.json_response({"jobs": "not a mapping"})

    async def _html_error(self, request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>bad gateway</html>\n")

    async def _ready(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})


@pytest.fixture
def fake() -> FakeCoordinator:
    return FakeCoordinator()


@pytest.fixture
async def client(
    fake: FakeCoordinator, aiohttp_server: Callable[..., Any]
) -> AsyncIterator[AsyncClient]:
    server: TestServer = await aiohttp_server(fake.app())
    settings = ClientSettings(server=str(server.make_url("")).rstrip("/"), admin_token=TOKEN)
    async with connect(settings) as operator:
        yield operator


async def cli_error(call: Any) -> CliError:
    """The error the command line shows for what `call` (a coroutine) raised."""
    with pytest.raises(BotfleetError) as raised:
        await call
    return from_client(raised.value)


async def test_submit_sends_the_job(client: AsyncClient, fake: FakeCoordinator) -> None:
    answer = await client.submit(m.SubmitJob(op="sum", payload={"a": 1}, idempotency_key="k"))
    assert (answer.id, answer.state) == ("job_1", "queued")
    assert fake.bodies[0]["op"] == "sum"
    assert fake.bodies[0]["payload"] == {"a": 1}
    assert fake.bodies[0]["idempotency_key"] == "k"


async def test_bulk_is_limited_to_1000(client: AsyncClient, fake: FakeCoordinator) -> None:
    jobs = [m.SubmitJob(op="sum") for _ in range(1000)]
    assert len(await client.submit_many(jobs)) == 1000
    assert len(await client.submit_many([*jobs, m.SubmitJob(op="sum")])) == 1001
    assert sorted(len(body["jobs"]) for body in fake.bodies) == [1, 1000, 1000]


async def test_wait_ms_is_passed_and_capped(client: AsyncClient, fake: FakeCoordinator) -> None:
    await client.get("job_2", wait_ms=90_000)
    assert fake.requests[-1] == ("GET", "/v1/jobs/job_2", {"wait_ms": "30000"})


async def test_errors_carry_status_code_and_message(client: AsyncClient) -> None:
    with pytest.raises(ClientNotFound) as missing:
        await client.get("job_missing")
    assert (missing.value.status, missing.value.code) == (404, "not_found")
    assert str(from_client(missing.value)) == "not found: no job job_missing (not_found, HTTP 404)"
    with pytest.raises(ClientConflict) as conflict:
        await client.cancel("job_3")
    assert re.match(
        r"^conflict: job already terminal \(conflict, HTTP 409\)", str(from_client(conflict.value))
    )


async def test_wrong_token_explains_where_the_token_comes_from(
    client: AsyncClient, aiohttp_server: Callable[..., Any], fake: FakeCoordinator
) -> None:
    server: TestServer = await aiohttp_server(fake.app())
    settings = ClientSettings(server=str(server.make_url("")).rstrip("/"), admin_token="wrong")
    async with connect(settings) as wrong:
        error = await cli_error(wrong.stats())
    assert isinstance(error, ApiError)
    assert re.search(r"rejected the token.*--token or BOTFLEET_TOKEN", str(error))
    assert error.status == 401


async def test_load_shedding_is_retried(client: AsyncClient, fake: FakeCoordinator) -> None:
    fake.shed_next = 2
    assert (await client.get("job_1")).id == "job_1"
    assert [path for _, path, _ in fake.requests].count("/v1/jobs/job_1") == 3


async def test_unexpected_answers_are_cli_errors(client: AsyncClient) -> None:
    error = await cli_error(client.stats())
    assert re.match(r"unexpected answer from GET /v1/stats \(HTTP 200\)", str(error))
    error = await cli_error(client.bots())
    assert isinstance(error, ApiError)
    assert re.search(r"<html>bad gateway</html> \(http_error, HTTP 502\)", str(error))


async def test_ready(client: AsyncClient) -> None:
    assert await client.ready()


async def test_unreachable() -> None:
    from tests.support.processes import free_port

    settings = ClientSettings(server=f"http://127.0.0.1:{free_port()}", admin_token=TOKEN)
    async with connect(settings) as operator:
        assert not await operator.ready()
        error = await cli_error(operator.stats())
    assert isinstance(error, ServerUnreachable)
    assert "connection refused" in str(error)


async def test_wait_for_jobs_reports_counts_until_all_end(
    client: AsyncClient, fake: FakeCoordinator
) -> None:
    fake.polls_until_done = 3
    ids = [f"job_{i}" for i in range(20)]
    seen: list[dict[str, int]] = []
    finished = await wait_for_jobs(client, ids, lambda counts: seen.append(dict(counts)))
    assert set(finished) == set(ids)
    assert {finished[i].state for i in ids} == {"succeeded", "failed"}
    assert finished["job_7"].error == "boom"
    assert seen[0] == {"queued": 20}
    assert seen[-1] == {"succeeded": 18, "failed": 2}
    assert any(counts.get("running") for counts in seen)
    assert all(query.get("wait_ms") == "5000" for _, path, query in fake.requests)


async def test_wait_for_jobs_surfaces_the_first_error(client: AsyncClient) -> None:
    error = await cli_error(wait_for_jobs(client, ["job_1", "job_missing"], lambda counts: None))
    assert isinstance(error, ApiError)
    assert "no job job_missing" in str(error)


def test_connection_errors_are_worded_for_the_command_line() -> None:
    refused = ConnectionFailed("cannot reach X (refused)", server="X", before_sending=True)
    assert str(from_client(refused)) == (
        "cannot reach X (refused); is `botfleet server` running? (set --server or BOTFLEET_SERVER)"
    )
    lost = ConnectionFailed("lost the connection to X", server="X", before_sending=False)
    assert str(from_client(lost)) == "lost the connection to X"


def test_encode_round_trip_of_a_submit() -> None:
    assert b'"op":"sum"' in encode(m.SubmitJob(op="sum"))
