"""A simulated bot: the bot ⇄ coordinator calls of docs/protocol.md over aiohttp, no agent.

Used by the load generator (many idle bots heartbeating and long-polling) and by the
HTTP claim benchmark (one bot claiming and reporting as fast as it can).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp

from benchmarks.harness import BenchmarkError
from botfleet.protocol import messages as m
from botfleet.protocol.codec import decode, encode

T = TypeVar("T")
OPERATIONS = ["sum"]


@dataclass
class SimBot:
    session: aiohttp.ClientSession
    api: str
    name: str
    instance_id: str = ""
    bot_id: str = ""
    token: str = ""
    heartbeat_interval_s: float = 30.0

    async def register(self, enroll_token: str, max_concurrency: int | None = None) -> None:
        self.instance_id = secrets.token_hex(8)
        request = m.RegisterRequest(
            bot_key=f"sim:{self.name}",
            instance_id=self.instance_id,
            version="1.0.0",
            capabilities=OPERATIONS,
            resources=m.Resources(cpu_cores=1, mem_mb=64),
            constraints={"max_concurrency": max_concurrency} if max_concurrency else {},
            meta={"hostname": "loadgen", "os": "linux"},
        )
        response = await self._call(
            "POST", "/bots/register", request, m.RegisterResponse, enroll_token
        )
        if response.auth is None:
            raise BenchmarkError(f"register of {self.name} returned no token")
        self.bot_id = response.bot_id
        self.token = response.auth.access_token
        if response.config is not None and response.config.heartbeat_interval:
            self.heartbeat_interval_s = response.config.heartbeat_interval

    async def heartbeat(self) -> m.HeartbeatResponse:
        request = m.HeartbeatRequest(
            instance_id=self.instance_id, metrics=m.BotMetrics(cpu=0.0, mem_mb=40.0), state="IDLE"
        )
        return await self._call(
            "PUT", f"/bots/{self.bot_id}/heartbeat", request, m.HeartbeatResponse, self.token
        )

    async def claim(self, limit: int, wait_ms: int) -> list[m.ClaimedJob]:
        request = m.ClaimRequest(
            bot_id=self.bot_id, operations=OPERATIONS, limit=limit, wait_ms=wait_ms
        )
        response = await self._call("POST", "/jobs/claim", request, m.ClaimResponse, self.token)
        return response.jobs

    async def complete_all(self, jobs: Sequence[m.ClaimedJob]) -> None:
        """One batch report completing every job with its sum."""
        reports = [
            m.ReportItem(
                job_id=job.id,
                action="complete",
                attempt=job.attempt,
                result={"result": job.payload["a"] + job.payload["b"]},
            )
            for job in jobs
        ]
        request = m.BatchReportRequest(instance_id=self.instance_id, reports=reports)
        response = await self._call(
            "POST", "/jobs/report", request, m.BatchReportResponse, self.token
        )
        refused = [result for result in response.results if result.status != "accepted"]
        if refused:
            raise BenchmarkError(f"{len(refused)} reports refused, e.g. {refused[0]}")

    async def _call(self, method: str, path: str, body: Any, kind: type[T], token: str) -> T:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        async with self.session.request(
            method, self.api + path, data=encode(body), headers=headers
        ) as response:
            payload = await response.read()
            if response.status >= 300:
                raise BenchmarkError(
                    f"{self.name}: {method} {path}: HTTP {response.status}: {payload[:300]!r}"
                )
        return decode(payload, kind)
