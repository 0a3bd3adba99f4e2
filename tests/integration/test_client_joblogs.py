"""`attempts()` and `logs()` of both clients against a real coordinator over real HTTP,
and the log lines counted per bot on /metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.integration.client_support import async_client, collect
from tests.integration.harness import Api, Bot, eventually
from tests.integration.test_http_job_logs import batch, running_job


async def send(api: Api, bot: Bot, job_id: str, *texts: str) -> None:
    status, _ = await api.post(f"/v1/jobs/{job_id}/logs", batch(bot, *texts), bot.headers)
    assert status == 200


async def test_logs_and_attempts_of_a_job(client: Any, api: Api) -> None:
    bot, job_id = await running_job(api)
    await send(api, bot, job_id, "one", "two")
    lines = await collect(client.logs(job_id))
    assert [(line.seq, line.text) for line in lines] == [(1, "one"), (2, "two")]
    (attempt,) = await client.attempts(job_id)
    assert (attempt.attempt, attempt.bot_id, attempt.outcome) == (1, bot.id, None)
    page = await client.log_page(job_id, after=1)
    assert [line.text for line in page.lines] == ["two"] and not page.done


async def test_following_ends_with_the_job(api: Api) -> None:
    bot, job_id = await running_job(api)
    async with async_client(api) as client:
        seen: list[str] = []

        async def follow() -> None:
            async for line in client.logs(job_id, follow=True):
                seen.append(line.text)

        follower = asyncio.create_task(follow())
        await send(api, bot, job_id, "first")
        body = {"instance_id": bot.instance_id, "result": {"sum": 3}}
        assert (await api.post(f"/v1/jobs/{job_id}/complete", body, bot.headers))[0] == 200
        await send(api, bot, job_id, "after the result")
        await eventually(lambda: len(seen) == 2, "the follower to see both lines")
        assert not follower.done()  # the bot may still send lines for a while
        api.clock.advance(10)  # past that grace: the log is complete
        await asyncio.wait_for(follower, 30)
    assert seen == ["first", "after the result"]


async def test_lines_received_and_dropped_are_counted_per_bot(api: Api) -> None:
    bot, job_id = await running_job(api)
    await send(api, bot, job_id, "a", "b", "c")
    body = batch(bot, "d", dropped=4)
    assert (await api.post(f"/v1/jobs/{job_id}/logs", body, bot.headers))[0] == 200
    text = await (await api.client.get("/metrics")).text()
    assert f'botfleet_job_log_lines_received_total{{bot_id="{bot.id}"}} 4.0' in text
    assert f'botfleet_job_log_lines_dropped_total{{bot_id="{bot.id}"}} 4.0' in text
