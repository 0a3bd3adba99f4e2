"""Prefetch over HTTP, on every backend: claims beyond the free slots, held jobs kept by
the heartbeat, and `POST /v1/jobs/release` giving unstarted jobs back uncharged."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from botfleet.clock import FakeClock
from botfleet.protocol import messages as m
from tests.integration.conftest import ClientFactory
from tests.integration.harness import ADMIN, Api, Bot, eventually, make_app

LEASE_TTL_S = 180.0  # the default job_lease_ttl


async def _claim(
    api: Api, bot: Bot, limit: int, prefetch: int | None = None, **extra: Any
) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {"bot_id": bot.id, "operations": ["sum"], "limit": limit, **extra}
    if prefetch is not None:
        body["prefetch"] = prefetch
    return await api.post("/v1/jobs/claim", body, bot.headers)


async def _release(api: Api, bot: Bot, jobs: list[tuple[str, int]]) -> tuple[int, dict[str, Any]]:
    body = {
        "instance_id": bot.instance_id,
        "jobs": [{"job_id": job_id, "attempt": attempt} for job_id, attempt in jobs],
    }
    return await api.post("/v1/jobs/release", body, bot.headers)


async def _attempts(api: Api, job_id: str) -> list[dict[str, Any]]:
    response = await api.client.get(f"/v1/jobs/{job_id}/attempts", headers=ADMIN)
    assert response.status == 200, await response.text()
    return list((await response.json())["attempts"])


async def test_the_coordinator_offers_prefetch_and_claims_up_to_1000(api: Api) -> None:
    bot = await api.register()
    assert m.FEATURE_PREFETCH in bot.registration["config"]["features"]
    await api.submit_many(1000)
    await api.submit_many(100)
    status, answer = await _claim(api, bot, limit=1000, prefetch=998)
    assert status == 200, answer
    assert len(answer["jobs"]) == 1000  # max_concurrency 2 + 998 held
    status, answer = await _claim(api, bot, limit=1001, prefetch=0)
    assert status == 400
    assert "$.limit" in answer["error"]["message"]


async def test_without_prefetch_a_claim_stops_at_the_free_slots(api: Api) -> None:
    bot = await api.register()
    await api.submit_many(10)
    status, answer = await _claim(api, bot, limit=10)
    assert status == 200
    assert len(answer["jobs"]) == 2  # max_concurrency, as before
    status, answer = await _claim(api, bot, limit=10, prefetch=3)
    assert len(answer["jobs"]) == 3  # holding 2 + 3 now


async def test_a_limit_above_100_needs_the_feature(
    tmp_path: Path, clock: FakeClock, aiohttp_client: ClientFactory
) -> None:
    features = tuple(f for f in m.ALL_FEATURES if f != m.FEATURE_PREFETCH)
    api = Api(await aiohttp_client(make_app(tmp_path, clock, features=features)), clock)
    bot = await api.register()
    await api.submit_many(10)
    status, answer = await _claim(api, bot, limit=101)
    assert status == 400
    assert "prefetch" in answer["error"]["message"]
    assert "$.limit" in answer["error"]["message"]
    # A `prefetch` field is ignored without the feature: the free slots only.
    status, answer = await _claim(api, bot, limit=10, prefetch=5)
    assert (status, len(answer["jobs"])) == (200, 2)
    status, answer = await _release(api, bot, [(answer["jobs"][0]["id"], 1)])
    assert status == 404


async def test_a_released_job_is_queued_again_uncharged_and_leaves_no_attempt(api: Api) -> None:
    bot = await api.register()
    job_id = await api.submit(max_attempts=1)
    (claimed,) = (await _claim(api, bot, limit=1, prefetch=1))[1]["jobs"]
    assert claimed["attempt"] == 1
    status, answer = await _release(api, bot, [(job_id, 1)])
    assert status == 200, answer
    assert answer["results"] == [{"job_id": job_id, "status": "released"}]
    view = await api.job(job_id)
    assert (view["state"], view["attempts_used"], view["attempt"]) == ("queued", 0, 1)
    assert await _attempts(api, job_id) == []  # nothing ran: no phantom attempt

    # Idempotent: the same release again changes nothing and answers the same.
    status, answer = await _release(api, bot, [(job_id, 1), (job_id, 1)])
    assert [r["status"] for r in answer["results"]] == ["released", "released"]
    assert (await api.job(job_id))["attempts_used"] == 0

    # The job runs once more under its single attempt, fenced by a new attempt number.
    (again,) = (await _claim(api, bot, limit=1))[1]["jobs"]
    assert again["attempt"] == 2
    status, _ = await api.post(
        f"/v1/jobs/{job_id}/complete",
        {"instance_id": bot.instance_id, "attempt": 2, "result": {"ok": True}},
        bot.headers,
    )
    assert status == 200
    view = await api.job(job_id)
    assert (view["state"], view["attempts_used"]) == ("succeeded", 1)
    assert [attempt["attempt"] for attempt in await _attempts(api, job_id)] == [2]
    # A release of the attempt that ended as unstarted still answers as before; the
    # attempt it ran under cannot be released once finished.
    status, answer = await _release(api, bot, [(job_id, 1), (job_id, 2)])
    assert [r["status"] for r in answer["results"]] == ["released", "conflict"]


async def test_only_the_holder_of_the_attempt_may_release(api: Api) -> None:
    holder, other = await api.register(), await api.register()
    job_id = await api.submit()
    await _claim(api, holder, limit=1)
    status, answer = await _release(api, other, [(job_id, 1), ("job_nope", 1)])
    assert status == 200
    assert [r["status"] for r in answer["results"]] == ["conflict", "not_found"]
    status, answer = await _release(api, holder, [(job_id, 2)])  # not the attempt it holds
    assert [r["status"] for r in answer["results"]] == ["conflict"]
    assert (await api.job(job_id))["state"] == "running"
    status, answer = await api.post(
        "/v1/jobs/release", {"instance_id": holder.instance_id, "jobs": []}, holder.headers
    )
    assert status == 400
    status, answer = await api.post(
        "/v1/jobs/release", {"instance_id": "i", "jobs": [{"job_id": job_id, "attempt": 1}]}, ADMIN
    )
    assert status in (401, 403)


async def test_a_release_wakes_a_waiting_claim_at_once(api: Api) -> None:
    holder, waiter = await api.register(), await api.register()
    job_id = await api.submit()
    await _claim(api, holder, limit=1)
    claim = asyncio.create_task(api.claim(waiter, wait_ms=30_000))
    await eventually(lambda: api.ctx.waiters.waiting() == 1, "the claim to wait")
    status, _ = await _release(api, holder, [(job_id, 1)])
    assert status == 200
    assert [job["id"] for job in await asyncio.wait_for(claim, 10)] == [job_id]


async def test_a_release_frees_a_place_under_a_limit(api: Api) -> None:
    holder, waiter = await api.register(), await api.register()
    response = await api.client.put("/v1/limits/one", json={"max_running": 1}, headers=ADMIN)
    assert response.status in (200, 201), await response.text()
    job_id = await api.submit(limits=["one"])
    other_id = await api.submit(limits=["one"])
    (claimed,) = (await _claim(api, holder, limit=2, prefetch=2))[1]["jobs"]
    assert claimed["id"] == job_id
    assert await api.claim(waiter) == []  # the limit's one place is taken
    claim = asyncio.create_task(api.claim(waiter, wait_ms=30_000))
    await eventually(lambda: api.ctx.waiters.waiting() == 1, "the claim to wait")
    await _release(api, holder, [(job_id, 1)])
    assert [job["id"] for job in await asyncio.wait_for(claim, 10)] in ([job_id], [other_id])


async def test_held_jobs_keep_their_leases_through_heartbeats(api: Api) -> None:
    bot = await api.register()
    await api.submit_many(5)
    jobs = (await _claim(api, bot, limit=5, prefetch=3))[1]["jobs"]
    running, held = [job["id"] for job in jobs[:2]], [job["id"] for job in jobs[2:]]
    # Heartbeats past the lease ttl, the held jobs listed as `held`: nothing expires,
    # and the held jobs are not taken for lost claim answers either.
    for _ in range(3):
        api.clock.advance(LEASE_TTL_S / 2)
        status, answer = await api.heartbeat(bot, running, held=held)
        assert status == 200, answer
        assert set(answer["extended"]) == set(running) | set(held)
        await api.ctx.reaper.run_once()
    for job in jobs:
        assert (await api.job(job["id"]))["state"] == "running"
    # The bot's view tells held jobs apart from running ones, as the heartbeat listed them.
    response = await api.client.get(f"/v1/bots/{bot.id}", headers=ADMIN)
    view = await response.json()
    assert (view["running"], view["held"]) == (running, held)
    # One of them started since (listed as running now): so the next heartbeat says.
    status, _ = await api.heartbeat(bot, [*running, held[0]], held=held[1:])
    response = await api.client.get("/v1/bots", headers=ADMIN)
    (view,) = (await response.json())["bots"]
    assert (view["running"], view["held"]) == ([*running, held[0]], held[1:])


async def test_a_held_job_whose_lease_runs_out_is_requeued_and_charged(api: Api) -> None:
    """The bot died holding it: as for a running job, the lease runs out and the job
    goes back to the queue with that attempt used (the coordinator cannot tell)."""
    bot = await api.register()
    job_id = await api.submit()
    await _claim(api, bot, limit=1, prefetch=1)
    api.clock.advance(LEASE_TTL_S + 1)
    await api.ctx.reaper.run_once()
    view = await api.job(job_id)
    assert (view["state"], view["attempts_used"]) == ("queued", 1)
