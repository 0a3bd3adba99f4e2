"""Failed authentications per client address: past 20 in a minute, 429 with Retry-After
until the window clears (the app's fake clock moves the minute)."""

from __future__ import annotations

from tests.integration.harness import ADMIN, Api
from tests.integration.roles_support import bearer, issue_headers

WRONG = bearer("bft_guessed")


async def _fail(api: Api, times: int) -> None:
    for _ in range(times):
        assert (await api.client.get("/v1/jobs", headers=WRONG)).status == 401


async def test_the_21st_failure_in_a_minute_blocks_the_address(api: Api) -> None:
    await _fail(api, 20)
    assert (await api.client.get("/v1/stats", headers=ADMIN)).status == 200  # not blocked yet
    api.clock.advance(30)
    await _fail(api, 1)  # the 21st within the minute

    for headers in (WRONG, ADMIN):  # a blocked address learns nothing about any token
        response = await api.client.get("/v1/jobs", headers=headers)
        assert response.status == 429
        assert response.headers["Retry-After"] == "30"
        data = await response.json()
        assert data["error"]["code"] == "too_many_failed_authentications"
        assert "more than 20 failed authentications from 127.0.0.1" in data["error"]["message"]
    # Bot routes too; public routes stay open.
    response = await api.client.post("/v1/jobs/claim", json={}, headers=WRONG)
    assert response.status == 429
    assert (await api.client.get("/healthz")).status == 200

    api.clock.advance(30)  # the first failure leaves the window
    assert (await api.client.get("/v1/jobs", headers=ADMIN)).status == 200


async def test_successful_calls_and_expired_tokens_do_not_count(api: Api) -> None:
    lapsing = await issue_headers(api, "temp", "reader", expires_in_s=1)
    api.clock.advance(1)
    for _ in range(30):
        assert (await api.client.get("/v1/stats", headers=ADMIN)).status == 200
        response = await api.client.get("/v1/stats", headers=lapsing)
        assert (await response.json())["error"]["code"] == "token_expired"
    await _fail(api, 20)
    assert (await api.client.get("/v1/stats", headers=ADMIN)).status == 200


async def test_bad_bot_tokens_count_too(api: Api) -> None:
    bot = await api.register()
    forged = bearer(f"{bot.id}.forged")
    body = {"bot_id": bot.id, "operations": ["sum"]}
    for _ in range(21):
        response = await api.client.post("/v1/jobs/claim", json=body, headers=forged)
        assert response.status == 401
    response = await api.client.post("/v1/jobs/claim", json=body, headers=bot.headers)
    assert response.status == 429
