"""The bot against a bare server: only the five base calls of the protocol, minimal answers.

Register answers without `config` or `assignment`, heartbeats answer only
`lease_until`, claim ignores `wait_ms`, and every other route is a 404. The bot
must register, claim, run sum jobs, complete them with the right results, and
back off on empty claims instead of spinning.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.machine import EXIT_OK, Bot
from bot.settings import Settings
from bot.state import BotState
from bot.testing import ScaledClock
from tests.support.processes import wait_until_async

ROOT = Path(__file__).resolve().parents[2]
GENEROUS_S = 30.0
TOKEN = "bare-token"
ServerFactory = Callable[..., Awaitable[TestServer]]


@dataclass
class BareServer:
    with_auth: bool = True
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    queue: list[str] = field(default_factory=list)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    claims: list[dict[str, Any]] = field(default_factory=list)
    heartbeats: list[dict[str, Any]] = field(default_factory=list)
    registrations: list[dict[str, Any]] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def add(self, op: str, payload: dict[str, Any]) -> str:
        job_id = f"job_{next(self._ids)}"
        self.jobs[job_id] = {"id": job_id, "op": op, "payload": payload}
        self.queue.append(job_id)
        return job_id

    def count(self, path_end: str) -> int:
        return sum(1 for _, path, _ in self.requests if path.endswith(path_end))

    def app(self) -> web.Application:
        @web.middleware
        async def record(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                self.requests.append((request.method, request.path, exc.status))
                raise
            self.requests.append((request.method, request.path, response.status))
            return response

        app = web.Application(middlewares=[record])
        app.router.add_post("/v1/bots/register", self.register)
        app.router.add_put("/v1/bots/{bot_id}/heartbeat", self.heartbeat)
        app.router.add_post("/v1/jobs/claim", self.claim)
        app.router.add_post("/v1/jobs/{job_id}/complete", self.complete)
        app.router.add_post("/v1/jobs/{job_id}/fail", self.fail)
        return app

    def _check_token(self, request: web.Request) -> None:
        if self.with_auth and request.headers.get("Authorization") != f"Bearer {TOKEN}":
            raise web.HTTPUnauthorized()

    async def register(self, request: web.Request) -> web.Response:
        self.registrations.append(await request.json())
        answer: dict[str, Any] = {"bot_id": "bot_bare"}
        if self.with_auth:
            answer["auth"] = {"access_token": TOKEN}
        return web.json_response(answer, status=201)

    async def heartbeat(self, request: web.Request) -> web.Response:
        self._check_token(request)
        self.heartbeats.append(await request.json())
        return web.json_response({"lease_until": "2030-01-01T00:00:00Z"})

    async def claim(self, request: web.Request) -> web.Response:
        self._check_token(request)
        body = await request.json()
        self.claims.append(body)
        handed: list[dict[str, Any]] = []
        while self.queue and len(handed) < body["limit"]:
            job = self.jobs[self.queue.pop(0)]
            handed.append({**job, "lease_until": "2030-01-01T00:00:00Z", "attempt": 1})
        return web.json_response({"jobs": handed})

    async def complete(self, request: web.Request) -> web.Response:
        self._check_token(request)
        self.results[request.match_info["job_id"]] = await request.json()
        return web.json_response({"status": "accepted"})

    async def fail(self, request: web.Request) -> web.Response:
        self._check_token(request)
        self.failures[request.match_info["job_id"]] = await request.json()
        return web.json_response({"status": "accepted"})


async def eventually(predicate: Callable[[], bool], what: str) -> None:
    async def check() -> bool:
        return predicate()

    await wait_until_async(check, GENEROUS_S, what)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.mark.parametrize(
    ("with_auth", "own_session"),
    [(True, False), (False, False), (True, True)],
    ids=["token", "no-auth", "bot-owned-session"],
)
async def test_bot_works_against_a_bare_server(
    aiohttp_server: ServerFactory,
    http: aiohttp.ClientSession,
    tmp_path: Path,
    with_auth: bool,
    own_session: bool,
) -> None:
    bare = BareServer(with_auth=with_auth)
    expected = {bare.add("sum", {"a": n, "b": 2 * n}): 3 * n for n in range(7)}
    bad = bare.add("sum", {"a": "x", "b": 1})
    server = await aiohttp_server(bare.app())
    clock = ScaledClock(0.01)
    settings = Settings(
        server_bases=(str(server.make_url("/v1")),),
        state_dir=tmp_path / "state",
        heartbeat_interval_s=2.0,
        bot_lease_ttl_s=10.0,
    )
    bot = Bot(settings, http=None if own_session else http, clock=clock, rng=random.Random(5))
    run = asyncio.create_task(bot.run())
    try:
        await eventually(lambda: len(bare.results) == 7 and bad in bare.failures, "jobs done")
        # Once the queue is empty, count the empty claims the bot goes on making.
        claims_when_empty = len(bare.claims)
        sleeps_when_empty = len(clock.slept)
        await eventually(lambda: len(bare.claims) >= claims_when_empty + 6, "empty claims")
        await eventually(lambda: len(bare.heartbeats) >= 2, "heartbeats")
    finally:
        bot.request_stop("test over")
        assert await asyncio.wait_for(run, GENEROUS_S) == EXIT_OK

    # Registered once, with what the protocol asks.
    (registration,) = bare.registrations
    assert registration["capabilities"] == ["subtract", "sum"]
    assert registration["constraints"] == {"max_concurrency": 2}
    assert registration["version"] == "1.0.0" and registration["instance_id"]
    # The five base calls only: no extension was tried, nothing was refused.
    assert {status for _, _, status in bare.requests} == {200, 201}
    assert bare.count("/report") == bare.count("/progress") == 0
    assert all(method != "DELETE" for method, _, _ in bare.requests)
    # Correct results, each reported once, with instance and attempt.
    assert {job_id: body["result"] for job_id, body in bare.results.items()} == {
        job_id: {"result": total} for job_id, total in expected.items()
    }
    for body in bare.results.values():
        assert body["instance_id"] == registration["instance_id"] and body["attempt"] == 1
    assert bare.failures[bad]["retryable"] is False
    assert "'a' must be a number" in bare.failures[bad]["error"]
    # Never more jobs asked for than slots.
    assert all(1 <= claim["limit"] <= 2 for claim in bare.claims)
    assert all(claim["operations"] == ["subtract", "sum"] for claim in bare.claims)
    assert bare.heartbeats[0]["state"] in {s.value for s in BotState}
    # Backoff, not spinning: after the queue ran dry, every empty claim was followed by
    # a backoff wait of at least MIN_BACKOFF_MS, and the waits grew.
    empty_claims = len(bare.claims) - claims_when_empty
    waits = [s for s in clock.slept[sleeps_when_empty:] if 0.5 <= s <= 5.0]
    assert len(waits) >= empty_claims - 1
    assert max(waits) > 1.0


async def test_bot_process_stops_cleanly_on_sigterm(
    aiohttp_server: ServerFactory, tmp_path: Path
) -> None:
    """`python bin/bot.py` as a process: flags, signals and the exit code."""
    bare = BareServer()
    ids = [bare.add("sum", {"a": n, "b": 1}) for n in range(3)]
    server = await aiohttp_server(bare.app())
    env = {**os.environ, "MIN_BACKOFF_MS": "50", "MAX_BACKOFF_MS": "200"}
    env.pop("SERVER_BASE", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bin" / "bot.py"),
        "--server",
        str(server.make_url("/v1")),
        "--state-dir",
        str(tmp_path / "state"),
        "--name",
        "proc-1",
        "--log-format",
        "json",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await eventually(lambda: set(bare.results) == set(ids), "jobs done by the process")
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), GENEROUS_S)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    log = stderr.decode()
    assert '"state SYNC -> IDLE (registered)"' in log or "SYNC -> IDLE" in log
    assert "DRAINING -> SHUTDOWN" in log
    assert (tmp_path / "state" / "identity.json").exists()
