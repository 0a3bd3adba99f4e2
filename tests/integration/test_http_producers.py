"""A producer's token reaches only the jobs it submitted: another's are 404 to it (read,
wait, attempts, logs, cancel, retry), its listings hold its own jobs, and an idempotency
key cannot reach across."""

from __future__ import annotations

import asyncio

from tests.integration.harness import ADMIN, Api
from tests.integration.roles_support import issue_headers


async def _submit(api: Api, headers: dict[str, str], count: int = 2) -> list[str]:
    ids = []
    for _ in range(count):
        response = await api.client.post("/v1/jobs", json={"op": "sum"}, headers=headers)
        assert response.status == 201
        ids.append((await response.json())["id"])
    return ids


async def _listed(api: Api, headers: dict[str, str], query: str = "") -> list[str]:
    response = await api.client.get(f"/v1/jobs{query}", headers=headers)
    assert response.status == 200
    return [job["id"] for job in (await response.json())["jobs"]]


async def test_two_producers_each_see_only_their_own_jobs(api: Api) -> None:
    alice = await issue_headers(api, "alice", "producer")
    bob = await issue_headers(api, "bob", "producer")
    alices, bobs = await _submit(api, alice), await _submit(api, bob)
    admins = await _submit(api, ADMIN, 1)

    assert set(await _listed(api, alice)) == set(alices)
    assert set(await _listed(api, bob)) == set(bobs)
    assert set(await _listed(api, alice, "?state=queued&op=sum")) == set(alices)
    assert set(await _listed(api, ADMIN)) == set(alices + bobs + admins)
    reader = await issue_headers(api, "dash", "reader")
    assert set(await _listed(api, reader)) == set(alices + bobs + admins)

    for job_id in alices:
        for own in (f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/attempts", f"/v1/jobs/{job_id}/logs"):
            assert (await api.client.get(own, headers=alice)).status == 200
        for path in (
            f"/v1/jobs/{job_id}",
            f"/v1/jobs/{job_id}?wait_ms=30000",
            f"/v1/jobs/{job_id}/attempts",
            f"/v1/jobs/{job_id}/logs?wait_ms=30000",
        ):
            response = await api.client.get(path, headers=bob)
            assert response.status == 404
            assert (await response.json())["error"] == {
                "code": "job_not_found",
                "message": f"no job {job_id}",  # the same as for a job that does not exist
            }
        for action in ("cancel", "retry"):
            response = await api.client.post(f"/v1/jobs/{job_id}/{action}", headers=bob)
            assert response.status == 404
    assert (await api.job(alices[0]))["state"] == "queued"  # bob's cancel did nothing


async def test_a_producer_cancels_retries_and_waits_on_its_own_jobs(api: Api) -> None:
    alice = await issue_headers(api, "alice", "producer")
    (job_id,) = await _submit(api, alice, 1)
    response = await api.client.post(f"/v1/jobs/{job_id}/cancel", headers=alice)
    assert response.status == 200 and (await response.json())["state"] == "cancelled"
    response = await api.client.post(f"/v1/jobs/{job_id}/retry", headers=alice)
    assert response.status == 200 and (await response.json())["state"] == "queued"

    bot = await api.register()
    waiting = asyncio.create_task(api.client.get(f"/v1/jobs/{job_id}?wait_ms=30000", headers=alice))
    (claimed,) = await api.claim(bot)
    body = {"instance_id": bot.instance_id, "result": {"sum": 3}}
    await api.client.post(f"/v1/jobs/{claimed['id']}/complete", json=body, headers=bot.headers)
    answer = await waiting
    assert answer.status == 200 and (await answer.json())["state"] == "succeeded"


async def test_an_idempotency_key_does_not_reach_another_producers_job(api: Api) -> None:
    alice = await issue_headers(api, "alice", "producer")
    bob = await issue_headers(api, "bob", "producer")
    body = {"op": "sum", "idempotency_key": "nightly"}
    first = await api.client.post("/v1/jobs", json=body, headers=alice)
    assert first.status == 201
    again = await api.client.post("/v1/jobs", json=body, headers=alice)
    assert again.status == 200
    response = await api.client.post("/v1/jobs", json=body, headers=bob)
    assert response.status == 409
    data = await response.json()
    assert data["error"]["code"] == "idempotency_key_taken"
    assert (await first.json())["id"] not in data["error"]["message"]
    response = await api.client.post("/v1/jobs/bulk", json={"jobs": [body]}, headers=bob)
    assert response.status == 409


async def test_a_producer_reads_no_bots_stats_or_tokens(api: Api) -> None:
    alice = await issue_headers(api, "alice", "producer")
    for path in ("/v1/bots", "/v1/stats", "/v1/tokens"):
        assert (await api.client.get(path, headers=alice)).status == 403
