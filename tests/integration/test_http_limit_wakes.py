"""A waiting claim for jobs behind a full limit gets one at once when a job under that
limit stops running, by any path: a report, a cancel, a lease running out (failed, or
queued again), a revocation, a lost claim answer, a deregistration, or the limit raised.
Its operation need not be the freed job's: the limit is what they share. A claim held
by a spent rate limit tries again when the bucket has its next token.

Waiting claims here re-check only once an hour, and the job lease is short, so a claim
that gets its job before its wait ends was woken by the change itself. On PostgreSQL a
claim waiting in another coordinator is woken too (LISTEN/NOTIFY)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from botfleet.clock import FakeClock
from coordinator.app import create_app
from coordinator.store.base import Store
from tests.integration.conftest import ClientFactory
from tests.integration.harness import ADMIN, GENEROUS_S, Api, Bot, eventually, server_config
from tests.support.backends import backend_stores

JOB_LEASE_S = 10.0
WAIT_MS = 20_000  # well past every step below, and far short of the re-check


def _config(tmp_path: Path) -> Any:
    return server_config(tmp_path, long_poll_recheck_s=3600.0, job_lease_ttl_s=JOB_LEASE_S)


@pytest.fixture
async def api(tmp_path: Path, clock: FakeClock, store: Store, aiohttp_client: ClientFactory) -> Api:
    client = await aiohttp_client(create_app(_config(tmp_path), store, clock))
    return Api(client, clock)


@dataclass(frozen=True)
class Stage:
    """A job of `sum` under the full limit `db` (`held`) running on `holder`; a job of
    `subtract` under `db` (`behind`) queued behind it; a claim of `waiter` for
    `subtract` waiting."""

    api: Api
    holder: Bot
    waiter: Bot
    held: str
    behind: str


def _claims_made(api: Api) -> float:
    found = api.ctx.metrics.registry.get_sample_value("botfleet_claim_duration_seconds_count")
    return found or 0.0


async def _stage(api: Api, waiting_in: Api, attempts: int = 3) -> tuple[Stage, asyncio.Task[Any]]:
    status = (await api.client.put("/v1/limits/db", json={"max_running": 1}, headers=ADMIN)).status
    assert status == 200
    holder = await api.register(capabilities=("sum",))
    waiter = await api.register(capabilities=("subtract",))
    held = await api.submit(limits=["db"], max_attempts=attempts)
    (claimed,) = await api.claim(holder)
    assert claimed["id"] == held
    behind = await api.submit(op="subtract", limits=["db"])
    before = _claims_made(waiting_in)
    claim = asyncio.create_task(waiting_in.claim(waiter, ("subtract",), wait_ms=WAIT_MS))
    # Waiting, and its first claim (which found the limit full) done: from here on only a
    # wake makes it claim again.
    await eventually(lambda: waiting_in.ctx.waiters.waiting() == 1, "the claim to wait")
    await eventually(lambda: _claims_made(waiting_in) > before, "the waiting claim's first try")
    assert not claim.done()
    return Stage(api, holder, waiter, held, behind), claim


async def _complete(stage: Stage) -> None:
    body = {"instance_id": stage.holder.instance_id, "attempt": 1, "result": {}}
    status, answer = await stage.api.post(
        f"/v1/jobs/{stage.held}/complete", body, stage.holder.headers
    )
    assert status == 200, answer


async def _cancel(stage: Stage) -> None:
    status, answer = await stage.api.post(f"/v1/jobs/{stage.held}/cancel", {}, ADMIN)
    assert status == 200, answer


async def _lease_expires(stage: Stage) -> None:
    stage.api.clock.advance(JOB_LEASE_S + 1)  # both bots' own leases hold
    outcome = await stage.api.ctx.reaper.run_once()
    assert outcome is not None and stage.held in (*outcome.requeued, *outcome.failed)


async def _bot_lease_expires(stage: Stage) -> None:
    api = stage.api
    api.clock.advance(api.ctx.config.bot_lease_ttl_s + 1)
    status, _ = await api.heartbeat(stage.waiter)  # the waiter stays online
    assert status == 200
    outcome = await api.ctx.reaper.run_once()
    assert outcome is not None and stage.holder.id in outcome.bots_offline


async def _revoke(stage: Stage) -> None:
    status, answer = await stage.api.post(f"/v1/bots/{stage.holder.id}/revoke", {}, ADMIN)
    assert status == 200, answer


async def _deregister(stage: Stage) -> None:
    body = {"instance_id": stage.holder.instance_id}
    response = await stage.api.client.delete(
        f"/v1/bots/{stage.holder.id}", json=body, headers=stage.holder.headers
    )
    assert response.status == 200, await response.text()


async def _claim_answer_lost(stage: Stage) -> None:
    """Two heartbeats that do not list the job: its claim answer never reached the bot."""
    for _ in range(2):
        stage.api.clock.advance(1)
        status, answer = await stage.api.heartbeat(stage.holder)
        assert status == 200, answer
    assert (await stage.api.job(stage.held))["state"] == "queued"


async def _raise_the_limit(stage: Stage) -> None:
    response = await stage.api.client.put("/v1/limits/db", json={"max_running": 2}, headers=ADMIN)
    assert response.status == 200


PATHS: dict[str, Callable[[Stage], Awaitable[None]]] = {
    "report": _complete,
    "cancel": _cancel,
    "lease expiry": _lease_expires,
    "bot lease expiry": _bot_lease_expires,
    "revocation": _revoke,
    "deregistration": _deregister,
    "lost claim answer": _claim_answer_lost,
    "limit raised": _raise_the_limit,
}


@pytest.mark.parametrize("path", list(PATHS))
async def test_a_waiting_claim_gets_the_freed_place_at_once(api: Api, path: str) -> None:
    stage, claim = await _stage(api, api)
    await PATHS[path](stage)
    jobs = await asyncio.wait_for(claim, GENEROUS_S)
    assert [job["id"] for job in jobs] == [stage.behind]


async def test_a_lease_that_runs_out_for_good_frees_its_place(api: Api) -> None:
    stage, claim = await _stage(api, api, attempts=1)
    await _lease_expires(stage)
    assert (await api.job(stage.held))["state"] == "failed"
    jobs = await asyncio.wait_for(claim, GENEROUS_S)
    assert [job["id"] for job in jobs] == [stage.behind]


@pytest.fixture
async def two_coordinators(
    tmp_path: Path, clock: FakeClock, aiohttp_client: ClientFactory
) -> AsyncIterator[tuple[Api, Api]]:
    async with backend_stores("postgres", tmp_path, clock, lambda attempt: 0.0) as stores:
        first = await aiohttp_client(create_app(_config(tmp_path), stores(), clock))
        second = await aiohttp_client(create_app(_config(tmp_path), stores(), clock))
        yield Api(first, clock), Api(second, clock)


@pytest.mark.parametrize("path", ["lease expiry", "revocation", "cancel"])
async def test_a_claim_waiting_in_another_coordinator_is_woken(
    two_coordinators: tuple[Api, Api], path: str
) -> None:
    here, there = two_coordinators
    stage, claim = await _stage(here, there)
    await PATHS[path](stage)
    jobs = await asyncio.wait_for(claim, GENEROUS_S)
    assert [job["id"] for job in jobs] == [stage.behind]


async def test_a_claim_held_by_a_spent_rate_waits_only_for_the_next_token(api: Api) -> None:
    """No notice announces a token: the waiting claim times its next try by the bucket."""
    response = await api.client.put("/v1/limits/api", json={"per_second": 2.0}, headers=ADMIN)
    assert response.status == 200
    bot = await api.register()
    first, second = [await api.submit(limits=["api"]) for _ in range(2)]
    assert [job["id"] for job in await api.claim(bot, limit=1)] == [first]
    before = _claims_made(api)
    claim = asyncio.create_task(api.claim(bot, wait_ms=WAIT_MS))
    await eventually(lambda: _claims_made(api) > before, "the waiting claim's first try")
    assert not claim.done()
    api.clock.advance(0.5)  # the bucket's next token, due 0.5 s after the first start
    jobs = await asyncio.wait_for(claim, GENEROUS_S)
    assert [job["id"] for job in jobs] == [second]
