"""Long-poll over HTTP: a waiting claim is answered by a submit; the reaper runs by itself."""

from __future__ import annotations

import asyncio
from pathlib import Path

from botfleet.clock import FakeClock
from tests.integration.conftest import ClientFactory
from tests.integration.harness import GENEROUS_S, Api, eventually, make_app
from tests.support.processes import wait_until_async


async def test_a_waiting_claim_is_answered_by_a_submit(api: Api) -> None:
    bot = await api.register()
    claim = asyncio.create_task(api.claim(bot, wait_ms=30_000))
    await eventually(lambda: api.ctx.waiters.waiting() == 1, "the claim to wait")
    job_id = await api.submit()
    assert [job["id"] for job in await claim] == [job_id]


async def test_a_bulk_submit_answers_every_waiting_bot(api: Api) -> None:
    bots = [await api.register() for _ in range(3)]
    claims = [asyncio.create_task(api.claim(bot, wait_ms=30_000)) for bot in bots]
    await eventually(lambda: api.ctx.waiters.waiting() == 3, "three claims to wait")
    ids = await api.submit_many(6)
    handed = [job["id"] for claim in claims for job in await claim]
    assert sorted(handed) == sorted(ids)  # 3 bots x max_concurrency 2


async def test_only_the_operations_asked_for(api: Api) -> None:
    bot = await api.register(capabilities=("sum", "resize"))
    claim = asyncio.create_task(api.claim(bot, operations=("resize",), wait_ms=30_000))
    await eventually(lambda: api.ctx.waiters.waiting() == 1, "the claim to wait")
    await api.submit("sum")
    resize = await api.submit("resize")
    assert [job["id"] for job in await claim] == [resize]


async def test_nothing_comes_and_the_wait_ends_empty(api: Api) -> None:
    bot = await api.register()
    assert await api.claim(bot, wait_ms=50) == []


async def test_shutdown_answers_waiting_claims(api: Api) -> None:
    bot = await api.register()
    claim = asyncio.create_task(api.claim(bot, wait_ms=30_000))
    await eventually(lambda: api.ctx.waiters.waiting() == 1, "the claim to wait")
    api.ctx.waiters.close()
    assert await claim == []


async def test_the_background_reaper_requeues_expired_jobs(
    tmp_path: Path, clock: FakeClock, aiohttp_client: ClientFactory
) -> None:
    client = await aiohttp_client(make_app(tmp_path, clock, reaper_interval_s=0.02))
    api = Api(client, clock)
    bot = await api.register()
    job_id = await api.submit()
    await api.claim(bot)
    clock.advance(181)

    async def requeued() -> bool:
        job = await api.job(job_id)
        return bool(job["state"] == "queued")

    await wait_until_async(requeued, GENEROUS_S, "the reaper to requeue the job")
    (again,) = await api.claim(await api.register())
    assert (again["id"], again["attempt"]) == (job_id, 2)


async def test_a_claim_waiting_at_the_concurrency_cap_wakes_on_the_report_that_frees_a_slot(
    tmp_path: Path, clock: FakeClock, aiohttp_client: ClientFactory
) -> None:
    # Rechecks far apart: only the report's wake-up can answer the claim in time.
    client = await aiohttp_client(make_app(tmp_path, clock, long_poll_recheck_s=3600))
    api = Api(client, clock)
    bot = await api.register()  # max_concurrency 2
    await api.submit_many(3)
    first, _ = await api.claim(bot, limit=2)
    claim = asyncio.create_task(api.claim(bot, wait_ms=30_000))
    await eventually(lambda: api.ctx.waiters.waiting() == 1, "the claim to wait at the cap")
    status, _ = await api.post(
        f"/v1/jobs/{first['id']}/complete",
        {"instance_id": bot.instance_id, "result": {"result": 3}},
        bot.headers,
    )
    assert status == 200
    # Without the wake-up the claim would end only when its 30 s wait runs out; 20 s
    # tells the two apart with a wide margin (the wake-up takes milliseconds).
    (third,) = await asyncio.wait_for(claim, 20)
    assert third["id"] != first["id"]
