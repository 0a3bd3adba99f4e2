"""Revoke, allow and forget a bot over HTTP, on every backend; two apps on one database
stand for two coordinator processes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from botfleet.clock import FakeClock
from coordinator.app import create_app
from tests.integration.harness import ADMIN, Api, Bot, server_config
from tests.support.backends import BACKENDS, backend_stores


async def _admin(api: Api, method: str, path: str) -> tuple[int, dict[str, Any]]:
    response = await api.client.request(method, path, headers=ADMIN)
    return response.status, dict(await response.json())


async def _complete(api: Api, bot: Bot, job_id: str, attempt: int) -> tuple[int, dict[str, Any]]:
    body = {"instance_id": bot.instance_id, "attempt": attempt, "result": {"value": 3}}
    return await api.post(f"/v1/jobs/{job_id}/complete", body, bot.headers)


async def _register_again(api: Api, bot: Bot) -> tuple[int, dict[str, Any]]:
    body = {
        "bot_key": bot.bot_key,
        "instance_id": bot.instance_id,
        "version": "1.0.0",
        "capabilities": ["sum"],
    }
    return await api.post("/v1/bots/register", body, {"Authorization": "Bearer enroll-secret"})


async def test_a_revoked_bot_is_cut_off_and_its_jobs_go_back_unused(api: Api) -> None:
    bot = await api.register()
    job_id = await api.submit(max_attempts=1)
    await api.claim(bot)

    status, view = await _admin(api, "POST", f"/v1/bots/{bot.id}/revoke")

    assert status == 200, view
    assert view["id"] == bot.id and view["state"] == "offline" and view["revoked_at"]
    job = await api.job(job_id)
    assert (job["state"], job["attempt"], job["attempts_used"]) == ("queued", 1, 0)
    status, data = await api.heartbeat(bot, running=[job_id])
    assert (status, data["error"]["code"]) == (401, "bot_revoked")
    status, data = await _complete(api, bot, job_id, attempt=1)
    assert (status, data["error"]["code"]) == (401, "bot_revoked")
    status, data = await _register_again(api, bot)
    assert (status, data["error"]["code"]) == (403, "bot_revoked")
    assert f"botfleet bots allow {bot.id}" in data["error"]["message"]
    status, listed = await _admin(api, "GET", "/v1/bots")
    assert [b["revoked_at"] for b in listed["bots"]] == [view["revoked_at"]]
    # Another bot runs the job; its one attempt was not used up.
    other = await api.register()
    assert [j["id"] for j in await api.claim(other)] == [job_id]


async def test_allow_lets_the_bot_key_register_again_with_a_new_token(api: Api) -> None:
    bot = await api.register()
    await _admin(api, "POST", f"/v1/bots/{bot.id}/revoke")

    status, view = await _admin(api, "POST", f"/v1/bots/{bot.id}/allow")

    assert status == 200 and view["revoked_at"] is None and view["state"] == "offline"
    status, data = await api.heartbeat(bot)
    assert (status, data["error"]["code"]) == (401, "unauthorized")
    status, data = await _register_again(api, bot)
    assert status == 201 and data["bot_id"] == bot.id
    again = Bot(bot.id, data["auth"]["access_token"], bot.instance_id, bot.bot_key)
    assert (await api.heartbeat(again))[0] == 200


async def test_unknown_bots_and_wrong_tokens(api: Api) -> None:
    for method, path in (
        ("POST", "/v1/bots/bot_nobody/revoke"),
        ("POST", "/v1/bots/bot_nobody/allow"),
        ("DELETE", "/v1/bots/bot_nobody"),
    ):
        status, data = await _admin(api, method, path)
        assert (status, data["error"]["code"]) == (404, "bot_not_found"), path
    bot = await api.register()
    status, data = await api.post(f"/v1/bots/{bot.id}/revoke", {}, bot.headers)
    assert status == 403, data
    response = await api.client.delete(f"/v1/bots/{bot.id}", headers={"Authorization": "Bearer x"})
    assert response.status == 401


async def test_forget_takes_an_offline_bot_only(api: Api) -> None:
    bot = await api.register()
    job_id = await api.submit()
    await api.claim(bot)
    status, data = await _admin(api, "DELETE", f"/v1/bots/{bot.id}")
    assert (status, data["error"]["code"]) == (409, "bot_online")

    assert (await _complete(api, bot, job_id, attempt=1))[0] == 200
    # The bot's own token keeps deregistering it.
    body = {"instance_id": bot.instance_id}
    response = await api.client.delete(f"/v1/bots/{bot.id}", json=body, headers=bot.headers)
    assert response.status == 200, await response.text()

    status, data = await _admin(api, "DELETE", f"/v1/bots/{bot.id}")
    assert status == 200, data
    assert (await _admin(api, "GET", f"/v1/bots/{bot.id}"))[0] == 404
    assert (await api.job(job_id))["bot_id"] == bot.id


async def test_forget_refuses_a_revoked_bot(api: Api) -> None:
    bot = await api.register()
    await _admin(api, "POST", f"/v1/bots/{bot.id}/revoke")
    status, data = await _admin(api, "DELETE", f"/v1/bots/{bot.id}")
    assert (status, data["error"]["code"]) == (409, "bot_revoked")


@pytest.fixture(params=BACKENDS)
async def two_apps(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock, aiohttp_client: Any
) -> AsyncIterator[tuple[Api, Api]]:
    async with backend_stores(request.param, tmp_path, clock, lambda attempt: 0.0) as stores:
        first = await aiohttp_client(create_app(server_config(tmp_path), stores(), clock))
        second = await aiohttp_client(create_app(server_config(tmp_path), stores(), clock))
        yield Api(first, clock), Api(second, clock)


async def test_a_revocation_through_one_process_holds_in_another_at_once(
    two_apps: tuple[Api, Api],
) -> None:
    """The first process still has the bot's token in its cache: the store refuses the
    bot all the same."""
    here, there = two_apps
    bot = await here.register()
    job_id = await here.submit()
    await here.claim(bot)

    assert (await _admin(there, "POST", f"/v1/bots/{bot.id}/revoke"))[0] == 200

    status, data = await here.heartbeat(bot, running=[job_id])
    assert (status, data["error"]["code"]) == (404, "bot_not_found")
    body = {"bot_id": bot.id, "operations": ["sum"], "limit": 10}
    status, data = await here.post("/v1/jobs/claim", body, bot.headers)
    assert status == 404, data
    status, data = await _complete(here, bot, job_id, attempt=1)
    assert status == 409, data
    assert (await here.job(job_id))["state"] == "queued"
    status, data = await _register_again(here, bot)
    assert (status, data["error"]["code"]) == (403, "bot_revoked")
