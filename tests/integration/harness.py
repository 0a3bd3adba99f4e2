"""Helpers for in-process coordinator tests: config, stores, a fake clock, API calls."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from botfleet.clock import FakeClock
from coordinator.app import create_app
from coordinator.config import ServerConfig
from coordinator.context import CONTEXT, AppContext
from coordinator.store import open_store
from coordinator.store.base import Store
from tests.support.processes import wait_until_async

GENEROUS_S = 30.0
ADMIN_TOKEN = "admin-secret"
ENROLL_TOKEN = "enroll-secret"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ENROLL = {"Authorization": f"Bearer {ENROLL_TOKEN}"}


async def eventually(predicate: Callable[[], bool], what: str) -> None:
    """Wait (generously) until `predicate()` holds."""

    async def check() -> bool:
        return predicate()

    await wait_until_async(check, GENEROUS_S, what)


def server_config(tmp_path: Path, **changes: Any) -> ServerConfig:
    values: dict[str, Any] = {
        "state_dir": tmp_path / "state",
        "admin_token": ADMIN_TOKEN,
        "enroll_token": ENROLL_TOKEN,
        # The tests run the reaper themselves (ctx.reaper.run_once) after moving the clock.
        "reaper_interval_s": 3600.0,
        "long_poll_recheck_s": 0.2,
    }
    values.update(changes)
    return ServerConfig(**values)


def sqlite_store(tmp_path: Path, clock: FakeClock) -> Store:
    return open_store(f"sqlite:///{tmp_path / 'botfleet.db'}", clock, lambda attempt: 0.0)


def make_app(tmp_path: Path, clock: FakeClock, **changes: Any) -> Any:
    return create_app(server_config(tmp_path, **changes), sqlite_store(tmp_path, clock), clock)


@dataclass
class Bot:
    id: str
    token: str
    instance_id: str
    bot_key: str
    registration: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Api:
    client: TestClient[Any, Any]
    clock: FakeClock

    @property
    def ctx(self) -> AppContext:
        return self.client.app[CONTEXT]  # type: ignore[index]

    async def register(
        self,
        name: str | None = None,
        capabilities: tuple[str, ...] = ("sum",),
        instance_id: str | None = None,
        **extra: Any,
    ) -> Bot:
        bot_key = name or f"key-{uuid.uuid4().hex[:8]}"
        body = {
            "bot_key": bot_key,
            "instance_id": instance_id or f"inst-{uuid.uuid4().hex[:8]}",
            "version": "1.0.0",
            "capabilities": list(capabilities),
            "resources": {"cpu_cores": 2, "mem_mb": 2048},
            "constraints": {},
            "meta": {"hostname": "test"},
            **extra,
        }
        response = await self.client.post("/v1/bots/register", json=body, headers=ENROLL)
        assert response.status == 201, await response.text()
        data = await response.json()
        return Bot(data["bot_id"], data["auth"]["access_token"], body["instance_id"], bot_key, data)

    async def submit(self, op: str = "sum", **fields: Any) -> str:
        body = {"op": op, "payload": fields.pop("payload", {"a": 1, "b": 2}), **fields}
        response = await self.client.post("/v1/jobs", json=body, headers=ADMIN)
        assert response.status in (200, 201), await response.text()
        return str((await response.json())["id"])

    async def submit_many(self, count: int, op: str = "sum") -> list[str]:
        jobs = [{"op": op, "payload": {"a": i, "b": 1}} for i in range(count)]
        response = await self.client.post("/v1/jobs/bulk", json={"jobs": jobs}, headers=ADMIN)
        assert response.status == 201, await response.text()
        return list((await response.json())["ids"])

    async def claim(
        self, bot: Bot, operations: tuple[str, ...] = ("sum",), limit: int = 10, wait_ms: int = 0
    ) -> list[dict[str, Any]]:
        body = {"bot_id": bot.id, "operations": list(operations), "limit": limit}
        if wait_ms:
            body["wait_ms"] = wait_ms
        response = await self.client.post("/v1/jobs/claim", json=body, headers=bot.headers)
        assert response.status == 200, await response.text()
        return list((await response.json())["jobs"])

    async def job(self, job_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/v1/jobs/{job_id}", headers=ADMIN)
        assert response.status == 200, await response.text()
        return dict(await response.json())

    async def heartbeat(
        self, bot: Bot, running: list[str] | None = None, **extra: Any
    ) -> tuple[int, dict[str, Any]]:
        body = {
            "instance_id": bot.instance_id,
            "running": [{"job_id": job_id, "op": "sum"} for job_id in running or []],
            "metrics": {"cpu": 0.5, "mem_mb": 100},
            **extra,
        }
        response = await self.client.put(
            f"/v1/bots/{bot.id}/heartbeat", json=body, headers=bot.headers
        )
        return response.status, dict(await response.json())

    async def post(
        self, path: str, body: Any, headers: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        response = await self.client.post(path, json=body, headers=headers)
        return response.status, dict(await response.json())
