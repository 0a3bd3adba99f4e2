"""Over HTTP, on every backend: a quarantined bot's claim answers 200 with no jobs."""

from __future__ import annotations

from typing import Any

from tests.integration.harness import ADMIN, Api, Bot


async def _command(api: Api, bot: Bot, command: str) -> None:
    response = await api.client.patch(
        f"/v1/bots/{bot.id}", json={"command": command}, headers=ADMIN
    )
    assert response.status == 200, await response.text()


async def _claim(api: Api, bot: Bot, **extra: Any) -> tuple[int, dict[str, Any]]:
    body = {"bot_id": bot.id, "operations": ["sum"], "limit": 5, **extra}
    response = await api.client.post("/v1/jobs/claim", json=body, headers=bot.headers)
    return response.status, dict(await response.json())


async def test_operator_quarantine_holds_claims_until_release(api: Api) -> None:
    bot = await api.register()
    job_id = await api.submit()
    await _command(api, bot, "quarantine")
    assert await _claim(api, bot) == (200, {"jobs": []})
    assert await _claim(api, bot, wait_ms=50) == (200, {"jobs": []})  # a long-poll too
    status, data = await api.heartbeat(bot, state="quarantined")
    assert status == 200 and data["command"] is None  # delivered
    assert await _claim(api, bot) == (200, {"jobs": []})
    assert (await api.job(job_id))["state"] == "queued"
    await _command(api, bot, "release")
    status, data = await api.heartbeat(bot, state="idle")
    assert status == 200, data
    assert [job["id"] for job in await api.claim(bot)] == [job_id]


async def test_a_bot_reporting_quarantined_gets_nothing(api: Api) -> None:
    bot = await api.register()
    job_id = await api.submit()
    status, _ = await api.heartbeat(bot, state="quarantined")
    assert status == 200
    assert await _claim(api, bot) == (200, {"jobs": []})
    status, _ = await api.heartbeat(bot, state="idle")
    assert status == 200
    assert [job["id"] for job in await api.claim(bot)] == [job_id]
