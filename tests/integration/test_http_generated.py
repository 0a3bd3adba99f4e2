"""Generated requests from /openapi.json (schemathesis): never a 5xx, every error in shape.

The coordinator runs for real (its own thread and event loop, a SQLite file) and is
called over HTTP with the tokens each operation's security names, so generated bodies
get past auth and into validation; some path ids are the real bot's, so the handlers
behind validation run too.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, settings

from botfleet.clock import SystemClock
from botfleet.protocol.openapi import generate
from coordinator.app import create_app
from tests.integration.harness import ADMIN, ENROLL, server_config, sqlite_store
from tests.support.processes import free_port

schemathesis = pytest.importorskip(
    "schemathesis", reason="schemathesis is not installed (the dev extra should have it)"
)

requests = pytest.importorskip("requests")  # comes with schemathesis

SCHEMA = schemathesis.openapi.from_dict(generate())
WAIT_CAP_MS = 20  # generated waits are cut short: zero 5xx is the point, not patience


class LiveServer:
    """The app on a free port, served from a background thread's event loop."""

    def __init__(self, tmp_path: Path) -> None:
        clock = SystemClock()
        self._app = create_app(server_config(tmp_path), sqlite_store(tmp_path, clock), clock)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(self._app, access_log=None)
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="live-coordinator")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        self._thread.start()
        if not self._ready.wait(30):
            raise TimeoutError("the coordinator did not start")
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)

    def _serve(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        loop.run_until_complete(self._runner.setup())
        loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._runner.cleanup())
            loop.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("generated")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def session() -> Iterator[Any]:
    with requests.Session() as http:
        yield http


@pytest.fixture(scope="module")
def bot(live: LiveServer, session: Any) -> dict[str, str]:
    body = {"bot_key": "fuzz", "instance_id": "fuzz-1", "version": "1.0.0",
            "capabilities": ["sum"]}  # fmt: skip
    response = session.post(f"{live.url}/v1/bots/register", json=body, headers=ENROLL)
    assert response.status_code == 201, response.text
    data = response.json()
    session.post(f"{live.url}/v1/jobs", json={"op": "sum"}, headers=ADMIN).raise_for_status()
    return {"id": data["bot_id"], "token": data["auth"]["access_token"]}


def _headers(case: Any, bot: dict[str, str]) -> dict[str, str]:
    security = case.operation.definition.raw.get("security") or []
    schemes = {name for requirement in security for name in requirement}
    if "adminToken" in schemes:
        return ADMIN
    if "enrollToken" in schemes:
        return ENROLL
    if "botToken" in schemes:
        return {"Authorization": f"Bearer {bot['token']}"}
    return {}


def _aim_at_the_real_bot(case: Any, bot: dict[str, str]) -> None:
    """Real ids and short waits, so generated calls reach the handlers behind auth."""
    if case.path_parameters and "bot_id" in case.path_parameters:
        case.path_parameters["bot_id"] = bot["id"]
    if isinstance(case.body, dict):
        if "bot_id" in case.body:
            case.body["bot_id"] = bot["id"]
        if isinstance(case.body.get("wait_ms"), int):
            case.body["wait_ms"] = min(case.body["wait_ms"], WAIT_CAP_MS)
    if case.query and isinstance(case.query.get("wait_ms"), int):
        case.query["wait_ms"] = min(case.query["wait_ms"], WAIT_CAP_MS)


@SCHEMA.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_generated_requests_never_cause_a_server_error(
    case: Any, live: LiveServer, session: Any, bot: dict[str, str]
) -> None:
    _aim_at_the_real_bot(case, bot)
    response = case.call(base_url=live.url, session=session, headers=_headers(case, bot))
    assert response.status_code < 500, (case.method, case.formatted_path, response.text)
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str)
