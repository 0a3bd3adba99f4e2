"""Every ROUTES entry of openapi.py is served, answers its documented status, and its
body validates against the generated schema; /openapi.json, /metrics and the dashboard."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from botfleet.clock import FakeClock
from botfleet.protocol.openapi import ROUTES, Route, generate
from coordinator.access import document_roles
from tests.integration.conftest import ClientFactory
from tests.integration.harness import ADMIN, ENROLL, Api, Bot, make_app

SPEC = generate()


@dataclass
class Scene:
    bot: Bot
    running: str  # a job claimed by bot
    cancelled: str  # a job cancelled by the operator
    token_id: str  # a role token
    schedule: str  # a schedule's name


@pytest.fixture
async def scene(api: Api) -> Scene:
    bot = await api.register()
    running = await api.submit()
    await api.claim(bot)
    cancelled = await api.submit()
    response = await api.client.post(f"/v1/jobs/{cancelled}/cancel", headers=ADMIN)
    assert response.status == 200
    response = await api.client.post(
        "/v1/tokens", json={"name": "scene", "role": "reader"}, headers=ADMIN
    )
    assert response.status == 201
    token_id = (await response.json())["id"]
    response = await api.client.put("/v1/limits/scene", json={"max_running": 2}, headers=ADMIN)
    assert response.status == 200
    schedule = {"every_s": 60, "job": {"op": "sum"}}
    response = await api.client.put("/v1/schedules/scene", json=schedule, headers=ADMIN)
    assert response.status == 200
    return Scene(bot, running, cancelled, token_id, "scene")


def _example(route: Route, scene: Scene) -> tuple[str, dict[str, str], Any]:
    """A valid call of `route`: path, headers, body."""
    bot = scene.bot
    job_id = scene.cancelled if route.path.endswith("/retry") else scene.running
    path = (
        route.path.replace("{bot_id}", bot.id)
        .replace("{job_id}", job_id)
        .replace("{token_id}", scene.token_id)
        .replace("{name}", scene.schedule)
    )
    headers = {
        "admin": ADMIN,
        "enroll": ENROLL,
        "bot": bot.headers,
        "token": ADMIN,
        "bot or admin": bot.headers,  # deregister; forgetting is in test_http_revocation
        None: {},
    }[route.auth]
    instance = {"instance_id": bot.instance_id}
    bodies: dict[str, Any] = {
        "RegisterRequest": {
            "bot_key": "surface",
            "instance_id": "i-1",
            "version": "1.2.3",
            "capabilities": ["sum"],
        },
        "HeartbeatRequest": {**instance, "running": [{"job_id": scene.running}]},
        "DeregisterRequest": instance,
        "ClaimRequest": {"bot_id": bot.id, "operations": ["sum"], "limit": 5},
        "CompleteRequest": {**instance, "result": {"sum": 3}},
        "FailRequest": {**instance, "error": "boom"},
        "ProgressRequest": {**instance, "progress": 0.25},
        "BatchReportRequest": {
            **instance,
            "reports": [{"job_id": scene.running, "action": "complete"}],
        },
        "ReleaseRequest": {**instance, "jobs": [{"job_id": scene.running, "attempt": 1}]},
        "SubmitJob": {"op": "sum", "payload": {"a": 1}},
        "BulkSubmitRequest": {"jobs": [{"op": "sum"}, {"op": "subtract"}]},
        "PatchBotRequest": {"assignment": {"max_concurrency": 4}, "command": "drain"},
        "PutScheduleRequest": {"cron": "*/5 * * * *", "job": {"op": "sum"}},
        "CreateTokenRequest": {"name": "surface", "role": "producer", "expires_in_s": 3600},
        "PutLimitRequest": {"max_running": 3, "per_second": 2.5, "burst": 4},
        "LogBatch": {
            **instance,
            "attempt": 1,
            "lines": [{"ts": "2026-01-19T10:15:00Z", "text": "hello"}],
        },
        "BulkLogRequest": {
            **instance,
            "batches": [
                {
                    "job_id": scene.running,
                    "attempt": 1,
                    "lines": [{"ts": "2026-01-19T10:15:00Z", "text": "hello"}],
                }
            ],
        },
    }
    body = bodies[route.request.__name__] if route.request is not None else None
    return path, headers, body


def _validate(route: Route, document: Any) -> None:
    assert route.response is not None
    schema = {
        "$ref": f"#/components/schemas/{route.response.__name__}",
        "components": SPEC["components"],
    }
    jsonschema.Draft202012Validator(schema).validate(document)


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method.upper()} {r.path}")
async def test_every_route_is_served_as_documented(api: Api, scene: Scene, route: Route) -> None:
    path, headers, body = _example(route, scene)
    response = await api.client.request(route.method.upper(), path, headers=headers, json=body)
    document = await response.json()
    assert response.status == route.status, document
    _validate(route, document)


async def test_openapi_json_is_the_generated_document(api: Api) -> None:
    response = await api.client.get("/openapi.json")
    assert response.status == 200
    assert await response.json() == document_roles(generate())


async def test_metrics_count_what_happened(api: Api, scene: Scene) -> None:
    bot = scene.bot
    body = {"instance_id": bot.instance_id, "result": {}}
    await api.post(f"/v1/jobs/{scene.running}/complete", body, bot.headers)
    response = await api.client.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    text = await response.text()
    assert 'botfleet_jobs_submitted_total{op="sum"} 2.0' in text
    assert 'botfleet_jobs_claimed_total{op="sum"} 1.0' in text
    assert 'botfleet_jobs_succeeded_total{op="sum"} 1.0' in text
    assert "botfleet_claim_duration_seconds_count 1.0" in text
    assert 'botfleet_job_queue_wait_seconds_count{op="sum"} 1.0' in text
    assert 'botfleet_jobs{state="succeeded"} 1.0' in text
    assert 'botfleet_jobs{state="cancelled"} 1.0' in text
    assert 'botfleet_jobs_by_op{op="sum",state="cancelled"} 1.0' in text
    assert 'botfleet_bots{state="online"} 1.0' in text
    assert "botfleet_oldest_queued_job_age_seconds 0.0" in text
    assert "botfleet_store_up 1.0" in text


async def test_each_app_has_its_own_registry(
    tmp_path: Path, clock: FakeClock, aiohttp_client: ClientFactory
) -> None:
    first = await aiohttp_client(make_app(tmp_path / "one", clock))
    second = await aiohttp_client(make_app(tmp_path / "two", clock))
    await first.post("/v1/jobs", json={"op": "sum"}, headers=ADMIN)
    assert (
        'botfleet_jobs_submitted_total{op="sum"} 1.0' in await (await first.get("/metrics")).text()
    )
    assert "botfleet_jobs_submitted_total{" not in await (await second.get("/metrics")).text()


async def test_the_dashboard_is_mounted(api: Api) -> None:
    response = await api.client.get("/")
    assert response.status == 200
    assert response.content_type == "text/html"
