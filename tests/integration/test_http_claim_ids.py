"""Over HTTP, on every backend: a claim retried with its `claim_id` (its first answer lost)
gets the first answer again, at once, whether it waits for work or carries reports."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.integration.harness import Api, Bot

# A repeat asks to wait this long for work; it must be answered well inside PROMPT_S,
# which only an answer that did not wait can be.
LONG_WAIT_MS = 30_000
PROMPT_S = 10.0


async def _claim(api: Api, bot: Bot, claim_id: str, **fields: Any) -> dict[str, Any]:
    body = {"bot_id": bot.id, "operations": ["sum"], "limit": 3, "claim_id": claim_id, **fields}
    status, data = await api.post("/v1/jobs/claim", body, bot.headers)
    assert status == 200, data
    return data


async def test_the_retried_claim_answer_equals_the_first(api: Api) -> None:
    bot = await api.register(constraints={"max_concurrency": 8})
    await api.submit_many(5)
    first = await _claim(api, bot, "clm-1")
    assert len(first["jobs"]) == 3
    api.clock.advance(1)
    assert await _claim(api, bot, "clm-1") == first
    # A long-poll repeat answers at once too, though nothing is queued for it now.
    assert len((await _claim(api, bot, "clm-2"))["jobs"]) == 2
    assert await _claim(api, bot, "clm-1", wait_ms=30_000) == first
    assert await _claim(api, bot, "clm-3", wait_ms=10) == {"jobs": []}


async def test_a_repeat_carrying_reports_answers_them_and_hands_back(api: Api) -> None:
    bot = await api.register(constraints={"max_concurrency": 8})
    await api.submit_many(4)
    (earlier,) = (await _claim(api, bot, "clm-0", limit=1))["jobs"]
    first = await _claim(api, bot, "clm-1")
    report = {"job_id": earlier["id"], "action": "complete", "attempt": 1, "result": {"r": 1}}
    again = await _claim(api, bot, "clm-1", instance_id=bot.instance_id, reports=[report])
    assert again["jobs"] == first["jobs"]
    assert again["results"] == [{"job_id": earlier["id"], "status": "accepted"}]


async def _complete(api: Api, bot: Bot, jobs: list[dict[str, Any]]) -> None:
    for job in jobs:
        body = {"instance_id": bot.instance_id, "attempt": job["attempt"], "result": {}}
        status, data = await api.post(f"/v1/jobs/{job['id']}/complete", body, bot.headers)
        assert status == 200, data


async def _repeat_promptly(api: Api, bot: Bot, claim_id: str, **fields: Any) -> dict[str, Any]:
    """The repeat, asking to wait LONG_WAIT_MS: it must not wait."""
    async with asyncio.timeout(PROMPT_S):
        return await _claim(api, bot, claim_id, wait_ms=LONG_WAIT_MS, **fields)


async def test_a_repeat_whose_jobs_all_ended_answers_at_once_with_none(api: Api) -> None:
    bot = await api.register(constraints={"max_concurrency": 8})
    await api.submit_many(2)
    first = await _claim(api, bot, "clm-1")
    await _complete(api, bot, first["jobs"])
    # Nothing queued: the claim looks before it claims, and sees the repeat.
    assert await _repeat_promptly(api, bot, "clm-1") == {"jobs": []}
    assert api.ctx.waiters.waiting() == 0


async def test_a_repeat_takes_nothing_new_and_does_not_wait_while_jobs_are_queued(
    api: Api,
) -> None:
    bot = await api.register(constraints={"max_concurrency": 8})
    await api.submit_many(5)
    first = await _claim(api, bot, "clm-1", limit=2)
    await _complete(api, bot, first["jobs"])
    # Jobs queued: the claim goes straight to the store, which answers the repeat.
    assert await _repeat_promptly(api, bot, "clm-1", limit=2) == {"jobs": []}
    assert len((await _claim(api, bot, "clm-2", limit=5))["jobs"]) == 3


async def test_a_repeat_carrying_the_reports_of_its_jobs_answers_them_at_once(
    api: Api,
) -> None:
    bot = await api.register(constraints={"max_concurrency": 8})
    await api.submit_many(5)
    first = await _claim(api, bot, "clm-1")
    reports = [
        {"job_id": job["id"], "action": "complete", "attempt": job["attempt"], "result": {}}
        for job in first["jobs"]
    ]
    again = await _repeat_promptly(api, bot, "clm-1", instance_id=bot.instance_id, reports=reports)
    assert again["jobs"] == []
    assert again["results"] == [
        {"job_id": job["id"], "status": "accepted"} for job in first["jobs"]
    ]
