"""Reports over HTTP: idempotent, fenced by attempt, only for jobs handed to that bot."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.integration.harness import ADMIN, Api, Bot


async def _complete(api: Api, bot: Bot, job_id: str, **extra: Any) -> tuple[int, dict[str, Any]]:
    body = {"instance_id": bot.instance_id, "result": {"sum": 3}, **extra}
    return await api.post(f"/v1/jobs/{job_id}/complete", body, bot.headers)


async def _fail(api: Api, bot: Bot, job_id: str, **extra: Any) -> tuple[int, dict[str, Any]]:
    body = {"instance_id": bot.instance_id, "error": "boom", **extra}
    return await api.post(f"/v1/jobs/{job_id}/fail", body, bot.headers)


async def _expire_job_leases(api: Api, *bots: Bot) -> None:
    """Job leases (180 s) run out while the bots stay online (120 s, renewed half-way)."""
    api.clock.advance(100)
    for bot in bots:
        assert (await api.heartbeat(bot))[0] == 200  # lists no job: its job leases lapse
    api.clock.advance(81)
    outcome = await api.ctx.reaper.run_once()
    assert outcome is not None and outcome.requeued and not outcome.bots_offline


class TestComplete:
    async def test_accepted_twice_with_one_effect(self, api: Api) -> None:
        bot = await api.register()
        job_id = await api.submit()
        await api.claim(bot)
        assert await _complete(api, bot, job_id) == (200, {"status": "accepted"})
        assert await _complete(api, bot, job_id) == (200, {"status": "accepted"})
        job = await api.job(job_id)
        assert (job["state"], job["result"], job["attempt"]) == ("succeeded", {"sum": 3}, 1)

    async def test_a_job_not_handed_to_this_bot_is_forbidden(self, api: Api) -> None:
        owner, other = await api.register(), await api.register()
        job_id = await api.submit()
        await api.claim(owner)
        status, data = await _complete(api, other, job_id)
        assert status == 403 and data["error"]["code"] == "forbidden"
        status, _ = await _fail(api, other, job_id)
        assert status == 403

    async def test_unknown_job(self, api: Api) -> None:
        bot = await api.register()
        status, data = await _complete(api, bot, "job_nope")
        assert status == 404 and data["error"]["code"] == "job_not_found"


class TestFencing:
    async def test_a_stale_attempt_loses_fail_but_first_complete_wins(self, api: Api) -> None:
        a, b = await api.register(), await api.register()
        job_id = await api.submit()
        (first,) = await api.claim(a)
        assert first["attempt"] == 1
        await _expire_job_leases(api, a, b)
        (second,) = await api.claim(b)
        assert (second["id"], second["attempt"]) == (job_id, 2)
        # a's lease is gone: its failure no longer counts ...
        status, data = await _fail(api, a, job_id, attempt=1)
        assert status == 409 and data["error"]["code"] == "conflict"
        # ... but its result is still welcome while the job is not terminal.
        assert (await _complete(api, a, job_id, attempt=1))[0] == 200
        status, _ = await _complete(api, b, job_id, attempt=2, result={"sum": 99})
        assert status == 409
        assert (await api.job(job_id))["result"] == {"sum": 3}

    async def test_a_failure_from_the_holder_requeues_with_a_new_attempt(self, api: Api) -> None:
        bot = await api.register()
        job_id = await api.submit(max_attempts=2)
        await api.claim(bot)
        assert (await _fail(api, bot, job_id, attempt=1))[0] == 200
        assert (await _fail(api, bot, job_id, attempt=1))[0] == 200  # the same report again
        job = await api.job(job_id)
        assert (job["state"], job["error"]) == ("queued", "boom")
        (again,) = await api.claim(bot)
        assert again["attempt"] == 2
        assert (await _fail(api, bot, job_id, retryable=True))[0] == 200
        job = await api.job(job_id)
        assert job["state"] == "failed"  # max_attempts spent

    async def test_a_non_retryable_failure_is_final(self, api: Api) -> None:
        bot = await api.register()
        job_id = await api.submit(max_attempts=5)
        await api.claim(bot)
        assert (await _fail(api, bot, job_id, retryable=False))[0] == 200
        assert (await api.job(job_id))["state"] == "failed"


class TestBatchReport:
    async def test_each_report_gets_its_status(self, api: Api) -> None:
        bot, other = await api.register(constraints={"max_concurrency": 10}), await api.register()
        mine = await api.submit_many(3)
        theirs = await api.submit()
        await api.claim(bot, limit=3)
        await api.claim(other)
        reports = [
            {"job_id": mine[0], "action": "complete", "result": {"sum": 1}},
            {"job_id": mine[1], "action": "fail", "error": "bad input", "retryable": False},
            {"job_id": mine[2], "action": "complete"},
            {"job_id": theirs, "action": "complete"},
            {"job_id": "job_nope", "action": "complete"},
        ]
        body = {"instance_id": bot.instance_id, "reports": reports}
        status, data = await api.post("/v1/jobs/report", body, bot.headers)
        assert status == 200
        assert [r["status"] for r in data["results"]] == [
            "accepted",
            "accepted",
            "accepted",
            "forbidden",
            "not_found",
        ]
        assert [(await api.job(j))["state"] for j in mine] == ["succeeded", "failed", "succeeded"]


class TestProgress:
    async def test_recorded_for_the_holder_only(self, api: Api) -> None:
        bot, other = await api.register(), await api.register()
        job_id = await api.submit()
        await api.claim(bot)
        body = {"instance_id": bot.instance_id, "progress": 0.5, "message": "half"}
        assert (await api.post(f"/v1/jobs/{job_id}/progress", body, bot.headers))[0] == 200
        job = await api.job(job_id)
        assert (job["progress"], job["progress_message"]) == (0.5, "half")
        body["instance_id"] = other.instance_id
        assert (await api.post(f"/v1/jobs/{job_id}/progress", body, other.headers))[0] == 403

    async def test_out_of_range_is_named(self, api: Api) -> None:
        bot = await api.register()
        job_id = await api.submit()
        body = {"instance_id": bot.instance_id, "progress": 1.5}
        status, data = await api.post(f"/v1/jobs/{job_id}/progress", body, bot.headers)
        assert status == 400 and "$.progress" in data["error"]["message"]


class TestClaim:
    async def test_lease_attempt_metadata(self, api: Api) -> None:
        bot = await api.register()
        job_id = await api.submit(timeout_s=600, metadata={"source": "test"})
        (job,) = await api.claim(bot)
        assert (job["id"], job["op"], job["attempt"]) == (job_id, "sum", 1)
        assert job["timeout_s"] == 600
        assert job["metadata"]["source"] == "test" and job["metadata"]["priority"] == 0
        assert job["lease_until"] == "2026-01-19T10:10:00Z"  # the job's timeout beats 180 s

    async def test_max_concurrency_caps_a_batch(self, api: Api) -> None:
        bot = await api.register()  # default max_concurrency 2
        await api.submit_many(5)
        assert len(await api.claim(bot, limit=100)) == 2

    async def test_an_offline_bot_gets_404(self, api: Api) -> None:
        bot = await api.register()
        await api.client.delete(f"/v1/bots/{bot.id}", headers=bot.headers)
        response = await api.client.post(
            "/v1/jobs/claim",
            json={"bot_id": bot.id, "operations": ["sum"]},
            headers=bot.headers,
        )
        assert response.status == 404


class TestConcurrentSingleReports:
    async def test_all_land_once_even_when_grouped(self, api: Api) -> None:
        bot = await api.register(constraints={"max_concurrency": 50})
        ids = await api.submit_many(50)
        assert len(await api.claim(bot, limit=50)) == 50
        # 50 reports at once, 5 of them twice: grouped into few transactions by the server.
        results = await asyncio.gather(*(_complete(api, bot, job_id) for job_id in ids + ids[:5]))
        assert {status for status, _ in results} == {200}
        stats = await (await api.client.get("/v1/stats", headers=ADMIN)).json()
        assert stats["jobs"]["succeeded"] == 50
        assert stats["throughput"]["succeeded"] == 50
