"""The bot against the real coordinator, in-process (`create_app` on SQLite in tmp_path).

Only the protocol is asked of the coordinator: producers submit over HTTP with the
admin token, the bot registers with the enrollment token and does the rest.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.api import HttpApi
from bot.errors import NetworkError
from bot.jobs import Registry, load_plugins
from bot.machine import EXIT_OK, Bot
from bot.settings import Settings
from bot.state import BotState, Job
from botfleet.clock import SystemClock
from botfleet.protocol import messages as m
from coordinator.app import create_app
from coordinator.config import ServerConfig
from coordinator.store import open_store
from tests.support.processes import wait_until_async

ADMIN = "admin-secret"
ENROLL = "enroll-secret"
GENEROUS_S = 30.0
ServerFactory = Callable[..., Awaitable[TestServer]]


async def eventually(predicate: Callable[[], Awaitable[bool]], what: str) -> None:
    await wait_until_async(predicate, GENEROUS_S, what)


@dataclass
class Coordinator:
    base: str
    admin: aiohttp.ClientSession

    async def call(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        async with self.admin.request(method, self.base + path, json=body) as response:
            assert response.status == status, await response.text()
            return await response.json()

    async def submit(self, op: str, payload: dict[str, Any], **fields: Any) -> str:
        answer = await self.call("POST", "/jobs", {"op": op, "payload": payload, **fields}, 201)
        return str(answer["id"])

    async def job(self, job_id: str, wait_ms: int = 0) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("GET", f"/jobs/{job_id}?wait_ms={wait_ms}")
        return result

    async def finished(self, job_id: str) -> dict[str, Any]:
        view: dict[str, Any] = {}

        async def terminal() -> bool:
            nonlocal view
            view = await self.job(job_id, wait_ms=2000)
            return view["state"] in m.TERMINAL_STATES

        await eventually(terminal, f"job {job_id} finished")
        return view

    async def bot(self, bot_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("GET", f"/bots/{bot_id}")
        return result


StartCoordinator = Callable[..., Awaitable[Coordinator]]


@pytest.fixture
async def start_coordinator(
    tmp_path: Path, aiohttp_server: ServerFactory
) -> AsyncIterator[StartCoordinator]:
    sessions: list[aiohttp.ClientSession] = []

    async def start(**changes: Any) -> Coordinator:
        values: dict[str, Any] = {
            "state_dir": tmp_path / "server",
            "admin_token": ADMIN,
            "enroll_token": ENROLL,
            "heartbeat_interval_s": 0.3,
            "bot_lease_ttl_s": 10.0,
            "reaper_interval_s": 0.2,
            "long_poll_recheck_s": 0.2,
        }
        values.update(changes)
        clock = SystemClock()
        store = open_store(f"sqlite:///{tmp_path / 'botfleet.db'}", clock, lambda attempt: 0.0)
        server = await aiohttp_server(create_app(ServerConfig(**values), store, clock))
        admin = aiohttp.ClientSession(headers={"Authorization": f"Bearer {ADMIN}"})
        sessions.append(admin)
        return Coordinator(str(server.make_url("/v1")), admin)

    yield start
    for session in sessions:
        await session.close()


@dataclass
class RunningBot:
    bot: Bot
    task: asyncio.Task[int]

    @property
    def bot_id(self) -> str:
        assert self.bot.session is not None and self.bot.session.bot_id is not None
        return self.bot.session.bot_id

    async def ready(self) -> None:
        await asyncio.wait_for(
            self.bot.lifecycle.wait_for({BotState.IDLE, BotState.CLAIM, BotState.PROCESS}),
            GENEROUS_S,
        )

    async def stop(self) -> int:
        self.bot.request_stop("test")
        return await asyncio.wait_for(self.task, GENEROUS_S)


StartBot = Callable[..., RunningBot]


@pytest.fixture
async def start_bot(tmp_path: Path) -> AsyncIterator[StartBot]:
    running: list[RunningBot] = []
    http = aiohttp.ClientSession()

    def start(coordinator: Coordinator, name: str = "bot-1", **options: Any) -> RunningBot:
        values: dict[str, Any] = {
            "server_bases": (coordinator.base,),
            "enroll_token": ENROLL,
            "bot_name": name,
            "state_dir": tmp_path / f"state-{name}",
            "long_poll_ms": 1000,
            "min_backoff_ms": 50,
            "max_backoff_ms": 500,
        }
        values.update(options.pop("settings", {}))
        settings = Settings(**values)
        options.setdefault("http", http)
        bot = Bot(settings, rng=random.Random(11), **options)
        entry = RunningBot(bot, asyncio.create_task(bot.run()))
        running.append(entry)
        return entry

    yield start
    for entry in running:
        if not entry.task.done():
            entry.bot.request_stop("teardown")
            entry.bot.request_stop("teardown")
        await asyncio.wait_for(entry.task, GENEROUS_S)
    await http.close()


@pytest.mark.parametrize(
    "features",
    [
        m.ALL_FEATURES,
        tuple(f for f in m.ALL_FEATURES if f != m.FEATURE_REPORT_ON_CLAIM),
        (),
    ],
    ids=["all-features", "reports-on-their-own", "base-calls-only"],
)
async def test_jobs_run_and_results_reach_the_producer(
    start_coordinator: StartCoordinator, start_bot: StartBot, features: tuple[str, ...]
) -> None:
    coordinator = await start_coordinator(features=features)
    ids = {await coordinator.submit("sum", {"a": n, "b": 100}): n + 100 for n in range(12)}
    minus = await coordinator.submit("subtract", {"a": 7, "b": 9})
    bad = await coordinator.submit("sum", {"a": True, "b": 1}, max_attempts=1)
    bot = start_bot(coordinator)

    for job_id, total in ids.items():
        view = await coordinator.finished(job_id)
        assert (view["state"], view["result"]) == ("succeeded", {"result": total})
        assert view["bot_id"] == bot.bot_id
    assert (await coordinator.finished(minus))["result"] == {"result": -2}
    failed = await coordinator.finished(bad)
    assert failed["state"] == "failed" and "'a' must be a number" in failed["error"]

    view = await coordinator.bot(bot.bot_id)
    assert view["state"] == "online" and view["capabilities"] == ["subtract", "sum"]
    assert bot.bot.scheduler is not None
    counts = bot.bot.scheduler.reporter.counts
    assert counts.accepted == 14
    # Reports ride on claims exactly when the coordinator offers it. Which ones do
    # depends on timing (one that finishes while a long-poll is out goes alone).
    assert (counts.rode > 0) is (m.FEATURE_REPORT_ON_CLAIM in features)
    assert await bot.stop() == EXIT_OK
    if m.FEATURE_DEREGISTER in features:
        assert (await coordinator.bot(bot.bot_id))["state"] == "offline"


async def test_heartbeats_reach_the_coordinator(
    start_coordinator: StartCoordinator, start_bot: StartBot
) -> None:
    coordinator = await start_coordinator()
    bot = start_bot(coordinator)
    await bot.ready()
    # Registration counts as the first heartbeat; a real one comes later.
    registered = (await coordinator.bot(bot.bot_id))["last_heartbeat"]
    assert registered is not None

    async def heartbeat_seen() -> bool:
        return (await coordinator.bot(bot.bot_id))["last_heartbeat"] != registered

    await eventually(heartbeat_seen, "a heartbeat")
    assert await bot.stop() == EXIT_OK


async def test_operator_drain_stops_the_bot(
    start_coordinator: StartCoordinator, start_bot: StartBot
) -> None:
    coordinator = await start_coordinator()
    bot = start_bot(coordinator)
    await bot.ready()

    await coordinator.call("PATCH", f"/bots/{bot.bot_id}", {"command": "drain"})

    assert await asyncio.wait_for(bot.task, GENEROUS_S) == EXIT_OK
    assert BotState.DRAINING in bot.bot.lifecycle.history
    assert (await coordinator.bot(bot.bot_id))["state"] == "offline"


async def test_operator_cancel_stops_a_running_job(
    start_coordinator: StartCoordinator, start_bot: StartBot
) -> None:
    started = asyncio.Event()

    async def forever(job: Job) -> dict[str, Any]:
        started.set()
        await asyncio.Event().wait()
        return {}

    registry = load_plugins(Registry(), entry_points=())
    registry.register("forever", forever)
    coordinator = await start_coordinator()
    job_id = await coordinator.submit("forever", {})
    bot = start_bot(coordinator, registry=registry)
    await asyncio.wait_for(started.wait(), GENEROUS_S)

    await coordinator.call("POST", f"/jobs/{job_id}/cancel")

    view = await coordinator.finished(job_id)
    assert view["state"] == "cancelled"

    async def stopped_here() -> bool:
        return bot.bot.scheduler is not None and len(bot.bot.scheduler.running) == 0

    await eventually(stopped_here, "the handler cancelled")
    assert await bot.stop() == EXIT_OK


async def test_assignment_pause_and_concurrency_apply_live(
    start_coordinator: StartCoordinator, start_bot: StartBot
) -> None:
    coordinator = await start_coordinator()
    bot = start_bot(coordinator)
    await bot.ready()
    scheduler = bot.bot.scheduler
    assert scheduler is not None

    await coordinator.call(
        "PATCH", f"/bots/{bot.bot_id}", {"assignment": {"paused": True, "max_concurrency": 4}}
    )

    async def applied() -> bool:
        return scheduler.slots.capacity == 4 and scheduler.session.assignment.paused

    await eventually(applied, "paused with 4 slots")
    waiting = await coordinator.submit("sum", {"a": 1, "b": 1})
    beats: set[str] = set()

    async def heartbeats_went_on() -> bool:
        beats.add((await coordinator.bot(bot.bot_id))["last_heartbeat"])
        return len(beats) >= 3

    await eventually(heartbeats_went_on, "heartbeats while paused")
    assert (await coordinator.job(waiting))["state"] == "queued"

    await coordinator.call("PATCH", f"/bots/{bot.bot_id}", {"assignment": {"paused": False}})
    assert (await coordinator.finished(waiting))["result"] == {"result": 2}
    assert await bot.stop() == EXIT_OK


class DropCompletes(HttpApi):
    """The network fails every `complete`: the bot must keep its results."""

    async def complete(self, job_id: str, request: m.CompleteRequest) -> None:
        raise NetworkError("connection reset (test)")


async def test_outbox_delivers_after_a_restart(
    start_coordinator: StartCoordinator, start_bot: StartBot, tmp_path: Path
) -> None:
    coordinator = await start_coordinator(features=())
    job_id = await coordinator.submit("sum", {"a": 20, "b": 22})

    async with aiohttp.ClientSession() as http:
        flaky = DropCompletes(http, [coordinator.base], timeout_s=5, enroll_token=ENROLL)
        first = start_bot(coordinator, api=flaky)

        async def kept() -> bool:
            return len(first.bot.outbox) == 1

        await eventually(kept, "the result kept in the outbox")
        assert await first.stop() == EXIT_OK
    assert (await coordinator.job(job_id))["state"] != "succeeded"

    second = start_bot(coordinator)  # same name, same state folder
    view = await coordinator.finished(job_id)
    assert (view["state"], view["result"]) == ("succeeded", {"result": 42})

    async def emptied() -> bool:  # the coordinator commits before the bot hears back
        return len(second.bot.outbox) == 0

    await eventually(emptied, "the outbox emptied")
    scheduler = second.bot.scheduler
    assert scheduler is not None
    assert not scheduler.finished  # delivered from the outbox, not run again
    assert scheduler.reporter.counts.accepted == 1
    assert await second.stop() == EXIT_OK
