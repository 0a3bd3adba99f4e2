"""Labels over HTTP: bots register them, jobs require them, claims honour them, a long
poll of a bot that may take a job wakes, and a queued job says what it waits for."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from botfleet.clock import FakeClock
from coordinator.app import create_app
from coordinator.store.base import Store
from tests.integration.conftest import ClientFactory
from tests.integration.harness import ADMIN, ENROLL, Api, eventually, server_config


async def _bad(api: Api, path: str, body: dict[str, Any], headers: dict[str, str]) -> str:
    response = await api.client.post(path, json=body, headers=headers)
    assert response.status == 400, await response.text()
    return str((await response.json())["error"]["message"])


def _register_body(labels: Any) -> dict[str, Any]:
    return {
        "bot_key": "k/x",
        "instance_id": "i-1",
        "version": "1.0.0",
        "capabilities": ["sum"],
        "labels": labels,
    }


async def test_labels_show_in_the_bot_view(api: Api) -> None:
    bot = await api.register(labels={"gpu": "a100", "region": "eu"})
    response = await api.client.get(f"/v1/bots/{bot.id}", headers=ADMIN)
    assert (await response.json())["labels"] == {"gpu": "a100", "region": "eu"}
    plain = await api.register()
    response = await api.client.get(f"/v1/bots/{plain.id}", headers=ADMIN)
    assert (await response.json())["labels"] == {}


async def test_a_job_requiring_labels_goes_to_the_bot_that_has_them(api: Api) -> None:
    gpu = await api.register(labels={"gpu": "a100"})
    bare = await api.register()
    job_id = await api.submit(requires={"gpu": ["h100", "a100"]})
    view = await api.job(job_id)
    assert view["requires"] == {"gpu": ["h100", "a100"]}
    assert view["waiting_for"] is None
    assert await api.claim(bare) == []
    assert [job["id"] for job in await api.claim(gpu)] == [job_id]
    assert (await api.job(job_id))["waiting_for"] is None


async def test_bulk_submit_takes_requirements(api: Api) -> None:
    gpu = await api.register(labels={"gpu": "a100"})
    jobs = [{"op": "sum", "requires": {"gpu": "a100"}}, {"op": "sum"}]
    response = await api.client.post("/v1/jobs/bulk", json={"jobs": jobs}, headers=ADMIN)
    assert response.status == 201, await response.text()
    first, second = (await response.json())["ids"]
    assert (await api.job(first))["requires"] == {"gpu": ["a100"]}
    assert (await api.job(second))["requires"] == {}
    assert sorted(job["id"] for job in await api.claim(gpu)) == sorted([first, second])


async def test_waiting_for_says_what_no_online_bot_has(api: Api) -> None:
    job_id = await api.submit(requires={"gpu": "a100"})
    assert (await api.job(job_id))["waiting_for"] == "no online bot has operation sum"
    await api.register(labels={"gpu": "t4"})
    assert (await api.job(job_id))["waiting_for"] == "no online bot has gpu=a100"
    choice = await api.submit(requires={"gpu": ["a100", "h100"], "region": "eu"})
    assert (await api.job(choice))["waiting_for"] == "no online bot has gpu=a100|h100"
    await api.register(labels={"gpu": "a100", "region": "us"})
    await api.register(labels={"gpu": "t4", "region": "eu"})
    assert (await api.job(job_id))["waiting_for"] is None
    assert (await api.job(choice))["waiting_for"] == (
        "no online bot has gpu=a100|h100 and region=eu"
    )
    other = await api.submit(op="resize")
    assert (await api.job(other))["waiting_for"] == "no online bot has operation resize"


async def test_a_long_poll_of_a_bot_without_the_labels_does_not_take_the_job(
    tmp_path: Path, clock: FakeClock, store: Store, aiohttp_client: ClientFactory
) -> None:
    # No re-check while the test runs: only the notice and its passing on can wake.
    config = server_config(tmp_path, long_poll_recheck_s=3600.0)
    api = Api(await aiohttp_client(create_app(config, store, clock)), clock)
    bare = await api.register()
    gpu = await api.register(labels={"gpu": "a100"})
    # The bot without labels waits longest, so the job's notice wakes it first: its
    # empty claim must pass the wake on to the bot that may take the job.
    bare_claim = asyncio.ensure_future(api.claim(bare, wait_ms=30_000))
    await eventually(lambda: api.ctx.waiters.waiting() == 1, "the first claim waiting")
    gpu_claim = asyncio.ensure_future(api.claim(gpu, wait_ms=30_000))
    await eventually(lambda: api.ctx.waiters.waiting() == 2, "both claims waiting")
    job_id = await api.submit(requires={"gpu": "a100"})
    claimed = await asyncio.wait_for(gpu_claim, timeout=20)
    assert [job["id"] for job in claimed] == [job_id]
    assert not bare_claim.done()
    plain = await api.submit()
    assert [job["id"] for job in await asyncio.wait_for(bare_claim, timeout=20)] == [plain]


@pytest.mark.parametrize(
    ("labels", "field"),
    [
        ({"": "a100"}, "$.labels"),
        ({"gpu": ""}, "$.labels"),
        ({"gpu": 7}, "$.labels"),
        ({"g pu": "a100"}, "$.labels"),
        ({f"k{i}": "v" for i in range(33)}, "$.labels"),
    ],
)
async def test_bad_labels_are_refused_naming_the_field(
    api: Api, labels: dict[str, Any], field: str
) -> None:
    assert field in await _bad(api, "/v1/bots/register", _register_body(labels), ENROLL)


@pytest.mark.parametrize(
    ("requires", "field"),
    [
        ({"": "a100"}, "$.requires"),
        ({"gpu": ""}, "$.requires"),
        ({"gpu": 7}, "$.requires"),
        ({"gpu": []}, "$.requires"),
        ({"gpu": [""]}, "$.requires"),
        ({"gpu": ["a100", 3]}, "$.requires"),
        ({"gpu": [f"v{i}" for i in range(17)]}, "$.requires"),
        ({f"k{i}": "v" for i in range(9)}, "$.requires"),
        ("gpu=a100", "$.requires"),
    ],
)
async def test_bad_requirements_are_refused_naming_the_field(
    api: Api, requires: Any, field: str
) -> None:
    assert field in await _bad(api, "/v1/jobs", {"op": "sum", "requires": requires}, ADMIN)
    bulk = {"jobs": [{"op": "sum"}, {"op": "sum", "requires": requires}]}
    assert "$.jobs[1].requires" in await _bad(api, "/v1/jobs/bulk", bulk, ADMIN)
