"""Over HTTP, on every backend: a claim retried with its `claim_id` (its first answer lost)
gets the first answer again, at once, whether it waits for work or carries reports."""

from __future__ import annotations

from typing import Any

from tests.integration.harness import Api, Bot


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
