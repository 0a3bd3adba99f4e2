"""Limits over HTTP: operators set, list and delete them; a submit names them (an
unknown one is a 400 naming the field); claims honour them; a waiting claim for a full
limit's jobs is woken when a running one ends."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.integration.harness import ADMIN, Api, Bot, eventually
from tests.integration.roles_support import issue_headers


async def _put(api: Api, name: str, body: dict[str, Any], headers: dict[str, str] = ADMIN) -> Any:
    response = await api.client.put(f"/v1/limits/{name}", json=body, headers=headers)
    return response.status, await response.json()


async def _complete(api: Api, bot: Bot, job_id: str) -> None:
    body = {"instance_id": bot.instance_id, "attempt": 1, "result": {}}
    status, answer = await api.post(f"/v1/jobs/{job_id}/complete", body, bot.headers)
    assert status == 200, answer


async def _limits(api: Api) -> dict[str, dict[str, Any]]:
    response = await api.client.get("/v1/limits", headers=ADMIN)
    assert response.status == 200, await response.text()
    return {limit["name"]: limit for limit in (await response.json())["limits"]}


async def test_set_list_and_delete(api: Api) -> None:
    status, view = await _put(api, "db", {"max_running": 2, "per_second": 5, "burst": 3})
    assert status == 200, view
    assert view == {
        "name": "db", "max_running": 2, "per_second": 5.0, "burst": 3, "running": 0,
        "tokens": 3.0, "starts_per_second": 0.0, "held_back": 0,
    }  # fmt: skip
    await _put(api, "op:sum", {"max_running": 1})
    listed = await _limits(api)
    assert set(listed) == {"db", "op:sum"}
    assert listed["op:sum"]["per_second"] is None and listed["op:sum"]["burst"] == 1
    response = await api.client.delete("/v1/limits/db", headers=ADMIN)
    assert response.status == 200 and (await response.json())["name"] == "db"
    response = await api.client.delete("/v1/limits/db", headers=ADMIN)
    assert response.status == 404
    assert set(await _limits(api)) == {"op:sum"}


async def test_bad_limits_are_400s_naming_the_field(api: Api) -> None:
    status, body = await _put(api, "db", {"max_running": -1})
    assert status == 400 and "max_running" in body["error"]["message"]
    status, body = await _put(api, "db", {"per_second": 0})
    assert status == 400 and "per_second" in body["error"]["message"]
    status, body = await _put(api, "db", {"burst": 0})
    assert status == 400 and "burst" in body["error"]["message"]
    status, body = await _put(api, "a,b", {"max_running": 1})
    assert status == 400 and "`name`" in body["error"]["message"]


async def test_a_submit_naming_an_unknown_limit_is_refused(api: Api) -> None:
    await _put(api, "db", {"max_running": 1})
    response = await api.client.post(
        "/v1/jobs", json={"op": "sum", "limits": ["db", "nope"]}, headers=ADMIN
    )
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["code"] == "unknown_limit" and "$.limits[1]" in error["message"]
    jobs = [{"op": "sum", "limits": ["db"]}, {"op": "sum", "limits": ["op:sum"]}]
    response = await api.client.post("/v1/jobs/bulk", json={"jobs": jobs}, headers=ADMIN)
    assert response.status == 400
    assert "$.jobs[1].limits[0]" in (await response.json())["error"]["message"]
    five = ["db"] * 5
    response = await api.client.post("/v1/jobs", json={"op": "sum", "limits": five}, headers=ADMIN)
    assert response.status == 400 and "limits" in (await response.json())["error"]["message"]


async def test_claims_hold_to_max_running_and_the_job_says_its_limits(api: Api) -> None:
    await _put(api, "db", {"max_running": 1})
    bot = await api.register()
    first = await api.submit(limits=["db"])
    second = await api.submit(limits=["db"])
    assert (await api.job(first))["limits"] == ["db"]
    assert [job["id"] for job in await api.claim(bot)] == [first]
    assert await api.claim(bot) == []
    assert (await _limits(api))["db"]["running"] == 1
    await _complete(api, bot, first)
    assert [job["id"] for job in await api.claim(bot)] == [second]


async def test_a_job_held_by_a_full_limit_says_which(api: Api) -> None:
    await _put(api, "db", {"max_running": 1})
    await _put(api, "api", {"per_second": 0.001, "burst": 1})
    await _put(api, "op:resize", {"max_running": 0})
    bot = await api.register(capabilities=("sum", "resize"))
    first = await api.submit(limits=["db"])
    second = await api.submit(limits=["db"])
    assert (await api.job(second))["waiting_for"] is None  # room: only its turn
    assert [job["id"] for job in await api.claim(bot, limit=1)] == [first]
    assert (await api.job(second))["waiting_for"] == "held by limit db (1 of 1 running)"
    rated = [await api.submit(limits=["api"]) for _ in range(2)]
    assert [job["id"] for job in await api.claim(bot)] == [rated[0]]
    assert (await api.job(rated[1]))["waiting_for"] == "held by limit api (rate 0.001/s used up)"
    resize = await api.submit(op="resize")
    assert (await api.job(resize))["waiting_for"] == "held by limit op:resize (0 of 0 running)"
    await _complete(api, bot, first)
    assert (await api.job(second))["waiting_for"] is None


async def test_the_start_rate_and_the_jobs_held_back_are_listed_and_scraped(api: Api) -> None:
    await _put(api, "db", {"max_running": 2})
    bot = await api.register()
    for _ in range(5):
        await api.submit(limits=["db"])
    assert len(await api.claim(bot)) == 2
    db = (await _limits(api))["db"]
    assert db["running"] == 2 and db["held_back"] == 3
    assert db["starts_per_second"] == 0.2  # 2 starts over the last 10 s
    text = await (await api.client.get("/metrics")).text()
    assert 'botfleet_limit_held_back_jobs{limit="db"} 3.0' in text
    assert 'botfleet_limit_running_jobs{limit="db"} 2.0' in text
    assert 'botfleet_limit_starts_per_second{limit="db"} 0.2' in text


async def test_a_waiting_claim_is_woken_when_a_place_frees_up(api: Api) -> None:
    await _put(api, "db", {"max_running": 1})
    holder = await api.register()
    waiter = await api.register()
    first = await api.submit(limits=["db"])
    second = await api.submit(limits=["db"])
    assert [job["id"] for job in await api.claim(holder)] == [first]
    claim = asyncio.create_task(api.claim(waiter, wait_ms=30_000))
    await eventually(lambda: api.ctx.waiters.waiting() == 1, "the claim to wait")
    await _complete(api, holder, first)
    assert [job["id"] for job in await claim] == [second]


async def test_who_may_call_what(api: Api) -> None:
    operator = await issue_headers(api, "ops", "operator")
    reader = await issue_headers(api, "looker", "reader")
    producer = await issue_headers(api, "maker", "producer")
    assert (await _put(api, "db", {"max_running": 1}, operator))[0] == 200
    assert (await _put(api, "db", {"max_running": 1}, reader))[0] == 403
    assert (await _put(api, "db", {"max_running": 1}, producer))[0] == 403
    assert (await api.client.get("/v1/limits", headers=reader)).status == 200
    assert (await api.client.get("/v1/limits", headers=producer)).status == 403
    assert (await api.client.delete("/v1/limits/db", headers=reader)).status == 403
    assert (await api.client.delete("/v1/limits/db", headers=operator)).status == 200
