"""`report_on_claim`: a claim carries the reports of the jobs that freed its slots."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from botfleet.clock import FakeClock
from botfleet.protocol import messages as m
from coordinator.app import create_app
from coordinator.store.sqlite import SQLiteStore
from tests.integration.conftest import ClientFactory
from tests.integration.harness import Api, Bot, eventually, server_config, sqlite_store


def _claim_body(bot: Bot, reports: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "bot_id": bot.id,
        "operations": ["sum"],
        "limit": 2,
        "instance_id": bot.instance_id,
        "reports": reports,
        **extra,
    }


def _done(job_id: str, total: int = 3) -> dict[str, Any]:
    return {"job_id": job_id, "action": "complete", "result": {"result": total}}


async def test_the_feature_is_offered(api: Api) -> None:
    bot = await api.register()
    assert m.FEATURE_REPORT_ON_CLAIM in bot.registration["config"]["features"]


async def test_reports_apply_before_the_claim_and_are_answered(api: Api) -> None:
    bot = await api.register(constraints={"max_concurrency": 2})
    first = await api.submit_many(2)
    assert {job["id"] for job in await api.claim(bot, limit=2)} == set(first)
    following = await api.submit_many(2)

    failed = {"job_id": first[1], "action": "fail", "error": "boom", "retryable": False}
    reports = [_done(first[0]), failed]
    status, data = await api.post("/v1/jobs/claim", _claim_body(bot, reports), bot.headers)

    assert status == 200, data
    # The bot was at its cap of 2: only the reports' freed capacity lets the claim fill.
    assert {job["id"] for job in data["jobs"]} == set(following)
    assert data["results"] == [
        {"job_id": first[0], "status": "accepted"},
        {"job_id": first[1], "status": "accepted"},
    ]
    assert (await api.job(first[0]))["state"] == "succeeded"
    assert (await api.job(first[1]))["state"] == "failed"


async def test_each_report_gets_its_own_status(api: Api) -> None:
    owner, other = await api.register(), await api.register()
    (job_id,) = await api.submit_many(1)
    await api.claim(owner)
    late_failure = {"job_id": job_id, "action": "fail", "error": "late"}
    reports = [_done(job_id), _done("job_nope"), late_failure]

    status, data = await api.post("/v1/jobs/claim", _claim_body(other, reports), other.headers)

    assert status == 200, data
    assert [r["status"] for r in data["results"]] == ["forbidden", "not_found", "forbidden"]
    assert (await api.job(job_id))["state"] == "running"
    status, data = await api.post("/v1/jobs/claim", _claim_body(owner, reports), owner.headers)
    assert [r["status"] for r in data["results"]] == ["accepted", "not_found", "conflict"]


async def test_a_claim_without_reports_keeps_the_seed_shape(api: Api) -> None:
    bot = await api.register()
    body = {"bot_id": bot.id, "operations": ["sum"], "limit": 1}
    status, data = await api.post("/v1/jobs/claim", body, bot.headers)
    assert (status, data) == (200, {"jobs": []})


async def test_reports_need_the_instance_id(api: Api) -> None:
    bot = await api.register()
    body = _claim_body(bot, [_done("job_x")])
    del body["instance_id"]
    status, data = await api.post("/v1/jobs/claim", body, bot.headers)
    assert status == 400 and data["error"]["code"] == "invalid_body"
    assert "instance_id" in data["error"]["message"]


async def test_malformed_reports_are_refused_naming_the_field(api: Api) -> None:
    bot = await api.register()
    bad = {"job_id": "job_x", "action": "explode"}
    status, data = await api.post("/v1/jobs/claim", _claim_body(bot, [bad]), bot.headers)
    assert status == 400 and "$.reports[0].action" in data["error"]["message"]
    status, data = await api.post(
        "/v1/jobs/claim", _claim_body(bot, [_done("j")] * 1001), bot.headers
    )
    assert status == 400 and "$.reports" in data["error"]["message"]


async def test_off_when_the_server_does_not_offer_it(
    tmp_path: Path, clock: FakeClock, aiohttp_client: ClientFactory
) -> None:
    features = tuple(f for f in m.ALL_FEATURES if f != m.FEATURE_REPORT_ON_CLAIM)
    config = server_config(tmp_path, features=features)
    api = Api(await aiohttp_client(create_app(config, sqlite_store(tmp_path, clock), clock)), clock)
    bot = await api.register()
    assert m.FEATURE_REPORT_ON_CLAIM not in bot.registration["config"]["features"]
    status, data = await api.post("/v1/jobs/claim", _claim_body(bot, [_done("j")]), bot.headers)
    assert status == 400 and "report_on_claim" in data["error"]["message"]


async def test_on_the_busy_path_reports_and_claim_share_one_transaction(
    tmp_path: Path, clock: FakeClock, aiohttp_client: ClientFactory
) -> None:
    store = sqlite_store(tmp_path, clock)
    assert isinstance(store, SQLiteStore)  # it counts its write transactions
    api = Api(await aiohttp_client(create_app(server_config(tmp_path), store, clock)), clock)

    def writes() -> int:
        return store.write_paths.inline + store.write_paths.thread

    bot = await api.register(constraints={"max_concurrency": 2})
    first = await api.submit_many(2)
    following = await api.submit_many(2)
    assert {job["id"] for job in await api.claim(bot, limit=2)} == set(first)
    before = writes()

    body = _claim_body(bot, [_done(first[0]), _done(first[1])], wait_ms=5000)
    status, data = await api.post("/v1/jobs/claim", body, bot.headers)

    assert status == 200, data
    assert {job["id"] for job in data["jobs"]} == set(following)
    assert [r["status"] for r in data["results"]] == ["accepted", "accepted"]
    assert writes() == before + 1
    assert (await api.job(first[0]))["state"] == "succeeded"


async def test_when_the_shared_transaction_finds_nothing_the_claim_waits(api: Api) -> None:
    bot = await api.register(constraints={"max_concurrency": 2})
    first = await api.submit_many(2)
    assert {job["id"] for job in await api.claim(bot, limit=2)} == set(first)  # jobs likely
    body = _claim_body(bot, [_done(first[0]), _done(first[1])], wait_ms=20_000)

    waiting = asyncio.create_task(api.post("/v1/jobs/claim", body, bot.headers))
    await eventually(lambda: api.ctx.waiters.waiting() >= 1, "the claim waiting")
    assert not waiting.done()
    assert (await api.job(first[0]))["state"] == "succeeded"  # the reports did not wait
    submitted = await api.submit()
    status, data = await waiting

    assert status == 200, data
    assert [job["id"] for job in data["jobs"]] == [submitted]
    assert [r["status"] for r in data["results"]] == ["accepted", "accepted"]


async def test_an_offline_bot_is_told_to_register_and_its_reports_stand(api: Api) -> None:
    bot = await api.register(constraints={"max_concurrency": 2})
    (job_id,) = await api.submit_many(1)
    await api.submit_many(1)
    assert len(await api.claim(bot, limit=1)) == 1  # a full claim: jobs likely
    api.clock.advance(3600)
    await api.ctx.reaper.run_once()

    status, data = await api.post("/v1/jobs/claim", _claim_body(bot, [_done(job_id)]), bot.headers)

    assert status == 404 and data["error"]["code"] == "bot_not_found"
    assert (await api.job(job_id))["state"] == "succeeded"


async def test_a_job_the_same_claim_takes_again_keeps_its_metrics(api: Api) -> None:
    """A retryable failure goes back to the queue (the test server retries at once) and
    the claim it rode on takes it again: let go of, then claimed, as two requests would."""
    bot = await api.register(constraints={"max_concurrency": 1})
    (job_id,) = await api.submit_many(1)
    await api.submit_many(1)  # the first claim comes back full: jobs likely
    assert [job["id"] for job in await api.claim(bot, limit=1)] == [job_id]
    retry = {"job_id": job_id, "action": "fail", "error": "again", "retryable": True}
    status, data = await api.post("/v1/jobs/claim", _claim_body(bot, [retry], limit=1), bot.headers)
    assert status == 200, data
    assert [job["id"] for job in data["jobs"]] == [job_id]

    status, data = await api.post(
        "/v1/jobs/report",
        {"instance_id": bot.instance_id, "reports": [_done(job_id)]},
        bot.headers,
    )

    assert status == 200 and data["results"][0]["status"] == "accepted", data
    registry = api.ctx.metrics.registry
    assert registry.get_sample_value("botfleet_jobs_succeeded_total", {"op": "sum"}) == 1.0
    assert registry.get_sample_value("botfleet_jobs_succeeded_total", {"op": "unknown"}) is None
