"""Producer and operator job calls over HTTP: submit, bulk, read, list, cancel, retry, stats."""

from __future__ import annotations

import asyncio

from botfleet.clock import parse_rfc3339
from tests.integration.harness import ADMIN, Api, eventually


class TestSubmit:
    async def test_created_then_idempotent(self, api: Api) -> None:
        body = {"op": "sum", "payload": {"a": 1, "b": 2}, "idempotency_key": "order-7"}
        first = await api.client.post("/v1/jobs", json=body, headers=ADMIN)
        assert first.status == 201
        created = await first.json()
        assert created["state"] == "queued" and created["id"].startswith("job_")
        again = await api.client.post("/v1/jobs", json=body, headers=ADMIN)
        assert again.status == 200
        assert (await again.json())["id"] == created["id"]

    async def test_the_job_reads_back(self, api: Api) -> None:
        job_id = await api.submit(
            payload={"a": 4, "b": 5}, priority=3, max_attempts=5, timeout_s=9.5
        )
        job = await api.job(job_id)
        assert job["op"] == "sum" and job["payload"] == {"a": 4, "b": 5}
        assert (job["state"], job["attempt"], job["max_attempts"]) == ("queued", 0, 5)
        assert (job["priority"], job["timeout_s"]) == (3, 9.5)
        assert parse_rfc3339(job["created_at"]) == api.clock.now()

    async def test_bulk(self, api: Api) -> None:
        ids = await api.submit_many(250)
        assert len(set(ids)) == 250
        stats = await (await api.client.get("/v1/stats", headers=ADMIN)).json()
        assert stats["jobs"]["queued"] == 250

    async def test_delayed_jobs_wait_for_their_time(self, api: Api) -> None:
        bot = await api.register()
        delayed = await api.submit(delay_ms=60_000)
        at = await api.submit(run_at="2026-01-19T10:02:00Z")
        assert await api.claim(bot) == []
        api.clock.advance(60)
        assert [j["id"] for j in await api.claim(bot)] == [delayed]
        api.clock.advance(60)
        assert [j["id"] for j in await api.claim(bot)] == [at]

    async def test_delay_and_run_at_together_are_refused(self, api: Api) -> None:
        body = {"op": "sum", "delay_ms": 5, "run_at": "2026-01-19T10:02:00Z"}
        status, data = await api.post("/v1/jobs", body, ADMIN)
        assert status == 400 and "delay_ms" in data["error"]["message"]

    async def test_priority_first_then_fifo(self, api: Api) -> None:
        bot = await api.register(constraints={"max_concurrency": 10})
        low = await api.submit(priority=0)
        high = await api.submit(priority=5)
        low2 = await api.submit(priority=0)
        assert [j["id"] for j in await api.claim(bot, limit=3)] == [high, low, low2]


class TestRead:
    async def test_unknown_job_is_404(self, api: Api) -> None:
        response = await api.client.get("/v1/jobs/job_nope", headers=ADMIN)
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "job_not_found"

    async def test_wait_ms_answers_when_the_job_ends(self, api: Api) -> None:
        bot = await api.register()
        job_id = await api.submit()
        await api.claim(bot)
        waiting = asyncio.create_task(
            api.client.get(f"/v1/jobs/{job_id}?wait_ms=30000", headers=ADMIN)
        )
        await eventually(lambda: api.ctx.waiters.waiting() == 1, "the read to wait")
        status, _ = await api.post(
            f"/v1/jobs/{job_id}/complete",
            {"instance_id": bot.instance_id, "result": {"sum": 3}},
            bot.headers,
        )
        assert status == 200
        response = await waiting
        job = await response.json()
        assert job["state"] == "succeeded" and job["result"] == {"sum": 3}

    async def test_wait_ms_out_of_range(self, api: Api) -> None:
        job_id = await api.submit()
        response = await api.client.get(f"/v1/jobs/{job_id}?wait_ms=30001", headers=ADMIN)
        assert response.status == 400
        assert "wait_ms" in (await response.json())["error"]["message"]


class TestList:
    async def test_pages_newest_first_with_a_cursor(self, api: Api) -> None:
        ids = await api.submit_many(25)
        seen: list[str] = []
        cursor: str | None = None
        while True:
            query = "limit=10" + (f"&cursor={cursor}" if cursor else "")
            page = await (await api.client.get(f"/v1/jobs?{query}", headers=ADMIN)).json()
            seen += [job["id"] for job in page["jobs"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == list(reversed(ids))

    async def test_filters(self, api: Api) -> None:
        bot = await api.register()
        first = await api.submit("sum")
        await api.submit("subtract")
        await api.claim(bot)
        running = await (await api.client.get("/v1/jobs?state=running", headers=ADMIN)).json()
        assert [j["id"] for j in running["jobs"]] == [first]
        subtract = await (await api.client.get("/v1/jobs?op=subtract", headers=ADMIN)).json()
        assert [j["op"] for j in subtract["jobs"]] == ["subtract"]

    async def test_bad_query_is_named(self, api: Api) -> None:
        for query, named in (
            ("state=exploded", "state"),
            ("limit=0", "limit"),
            ("limit=x", "limit"),
            ("cursor=%%%", "cursor"),
        ):
            response = await api.client.get(f"/v1/jobs?{query}", headers=ADMIN)
            assert response.status == 400, query
            assert f"`{named}`" in (await response.json())["error"]["message"]


class TestCancelRetry:
    async def test_cancel_queued_then_retry(self, api: Api) -> None:
        job_id = await api.submit()
        response = await api.client.post(f"/v1/jobs/{job_id}/cancel", headers=ADMIN)
        assert response.status == 200
        assert (await response.json())["state"] == "cancelled"
        again = await api.client.post(f"/v1/jobs/{job_id}/cancel", headers=ADMIN)
        assert again.status == 409
        response = await api.client.post(f"/v1/jobs/{job_id}/retry", headers=ADMIN)
        assert response.status == 200
        assert (await response.json())["state"] == "queued"

    async def test_retry_of_a_queued_job_conflicts(self, api: Api) -> None:
        job_id = await api.submit()
        response = await api.client.post(f"/v1/jobs/{job_id}/retry", headers=ADMIN)
        assert response.status == 409
        assert (await response.json())["error"]["code"] == "job_state"

    async def test_unknown(self, api: Api) -> None:
        for verb in ("cancel", "retry"):
            response = await api.client.post(f"/v1/jobs/job_nope/{verb}", headers=ADMIN)
            assert response.status == 404


class TestStats:
    async def test_counts(self, api: Api) -> None:
        bot = await api.register()
        job_id = await api.submit()
        await api.submit("subtract")
        await api.claim(bot)
        await api.post(f"/v1/jobs/{job_id}/complete", {"instance_id": bot.instance_id}, bot.headers)
        stats = await (await api.client.get("/v1/stats", headers=ADMIN)).json()
        assert stats["jobs"] == {
            "queued": 1,
            "running": 0,
            "succeeded": 1,
            "failed": 0,
            "cancelled": 0,
        }
        assert stats["jobs_by_op"]["sum"]["succeeded"] == 1
        assert stats["bots"] == {"online": 1, "offline": 0}
        assert stats["throughput"]["succeeded"] == 1
        assert stats["oldest_queued_age_s"] == 0


class TestTracing:
    async def test_the_producers_trace_reaches_the_bot(self, api: Api) -> None:
        trace_id = "0af7651916cd43dd8448eb211c80319c"
        bot = await api.register()
        await api.submit(metadata={"traceparent": f"00-{trace_id}-b7ad6b7169203331-01"})
        (job,) = await api.claim(bot)
        # the producer's context, or the coordinator's submit span within the same trace
        assert job["metadata"]["traceparent"].split("-")[1] == trace_id
