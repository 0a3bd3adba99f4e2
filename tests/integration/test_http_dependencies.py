"""Submit's `after` over HTTP: waiting, a graph in one bulk call, and bad references."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.integration.harness import ADMIN, Api, Bot, eventually
from tests.integration.roles_support import issue_headers


async def _complete(api: Api, bot: Bot, job_id: str) -> None:
    body = {"instance_id": bot.instance_id, "result": {"sum": 3}}
    assert await api.post(f"/v1/jobs/{job_id}/complete", body, bot.headers) == (
        200,
        {"status": "accepted"},
    )


async def _bulk(api: Api, jobs: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    return await api.post("/v1/jobs/bulk", {"jobs": jobs}, ADMIN)


async def test_a_job_waits_and_says_what_for(api: Api) -> None:
    bot = await api.register()
    first = await api.submit()
    second = await api.submit(after=[first])
    assert (await api.job(second))["waiting_for"] == f"waiting for {first} (queued)"
    assert [job["id"] for job in await api.claim(bot)] == [first]
    assert (await api.job(second))["waiting_for"] == f"waiting for {first} (running)"
    assert await api.claim(bot) == []
    await _complete(api, bot, first)
    view = await api.job(second)
    assert view["state"] == "queued" and view["waiting_for"] is None
    assert view["after"] == [first]  # what it named stays in the view, for good
    assert (await api.job(first))["after"] == []
    assert [job["id"] for job in await api.claim(bot)] == [second]


async def test_a_graph_in_one_bulk_submit(api: Api) -> None:
    bot = await api.register()
    status, data = await _bulk(
        api,
        [
            {"op": "sum"},
            {"op": "sum", "after": ["#0"]},
            {"op": "sum", "after": ["#0"]},
            {"op": "sum", "after": ["#1", "#2"]},
        ],
    )
    assert status == 201
    top, left, right, bottom = data["ids"]
    assert [job["id"] for job in await api.claim(bot)] == [top]
    await _complete(api, bot, top)
    assert sorted(job["id"] for job in await api.claim(bot)) == sorted([left, right])
    await _complete(api, bot, left)
    await _complete(api, bot, right)
    assert [job["id"] for job in await api.claim(bot)] == [bottom]
    assert (await api.job(bottom))["after"] == [left, right]


async def test_a_failed_dependency_cancels_with_an_error_naming_it(api: Api) -> None:
    bot = await api.register()
    first = await api.submit(max_attempts=1)
    second = await api.submit(after=[first])
    await api.claim(bot)
    body = {"instance_id": bot.instance_id, "error": "boom", "retryable": False}
    assert (await api.post(f"/v1/jobs/{first}/fail", body, bot.headers))[0] == 200
    view = await api.job(second)
    assert (view["state"], view["error"]) == ("cancelled", f"dependency {first} failed")


async def test_an_unknown_job_is_a_400_naming_it(api: Api) -> None:
    first = await api.submit()
    status, data = await api.post("/v1/jobs", {"op": "sum", "after": [first, "job_missing"]}, ADMIN)
    assert status == 400
    assert data["error"]["code"] == "unknown_dependency"
    assert "job_missing" in data["error"]["message"]
    status, data = await _bulk(api, [{"op": "sum"}, {"op": "sum", "after": ["job_gone"]}])
    assert status == 400
    assert "job_gone" in data["error"]["message"] and "$.jobs[1]" in data["error"]["message"]
    stats = await (await api.client.get("/v1/stats", headers=ADMIN)).json()
    assert stats["jobs"]["queued"] == 1  # the refused bulk wrote nothing


@pytest.mark.parametrize(
    ("after", "words"),
    [
        (["#1"], "the job itself"),
        (["#2"], "later job"),
        (["#x"], "neither a job id"),
    ],
)
async def test_a_bad_reference_is_a_400_naming_it(api: Api, after: list[str], words: str) -> None:
    status, data = await _bulk(api, [{"op": "sum"}, {"op": "sum", "after": after}])
    assert status == 400
    message = data["error"]["message"]
    assert words in message and after[0] in message and "$.jobs[1].after[0]" in message


async def test_a_reference_in_a_single_submit_is_a_400(api: Api) -> None:
    status, data = await api.post("/v1/jobs", {"op": "sum", "after": ["#0"]}, ADMIN)
    assert status == 400 and "$.after[0]" in data["error"]["message"]


async def test_more_than_100_dependencies_is_a_400(api: Api) -> None:
    status, data = await api.post(
        "/v1/jobs", {"op": "sum", "after": [f"job_{i}" for i in range(101)]}, ADMIN
    )
    assert status == 400 and "after" in data["error"]["message"]


async def test_a_producer_waits_only_for_its_own_jobs(api: Api) -> None:
    alice = await issue_headers(api, "alice", "producer")
    bob = await issue_headers(api, "bob", "producer")
    status, own = await api.post("/v1/jobs", {"op": "sum"}, alice)
    assert status == 201
    status, data = await api.post("/v1/jobs", {"op": "sum", "after": [own["id"]]}, alice)
    assert status == 201
    status, data = await api.post("/v1/jobs", {"op": "sum", "after": [own["id"]]}, bob)
    assert status == 400 and data["error"]["code"] == "unknown_dependency"
    assert own["id"] in data["error"]["message"]


async def test_a_waiting_claim_is_answered_when_the_dependency_succeeds(api: Api) -> None:
    first_bot = await api.register(capabilities=("sum",))
    second_bot = await api.register(capabilities=("resize",))
    first = await api.submit()
    second = await api.submit("resize", after=[first])
    claim = asyncio.create_task(api.claim(second_bot, operations=("resize",), wait_ms=30_000))
    await eventually(lambda: api.ctx.waiters.waiting() == 1, "the claim to wait")
    assert [job["id"] for job in await api.claim(first_bot)] == [first]
    assert not claim.done()
    await _complete(api, first_bot, first)
    assert [job["id"] for job in await claim] == [second]


async def test_a_listing_says_how_many_dependencies_a_job_waits_for(api: Api) -> None:
    first = await api.submit()
    second = await api.submit()
    waiting = await api.submit(after=[first, second])
    response = await api.client.get("/v1/jobs", headers=ADMIN)
    views = {view["id"]: view for view in (await response.json())["jobs"]}
    assert views[waiting]["waiting_for"] == "waiting for 2 unfinished dependencies"
    assert views[first]["waiting_for"] is None
