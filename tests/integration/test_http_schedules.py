"""Schedules over HTTP: put, list, delete, the jobs they make, who may do what, and the
bad inputs (each a 400 naming the field)."""

from __future__ import annotations

from typing import Any

import pytest

from coordinator.app import SCHEDULE_FIRER
from tests.integration.harness import ADMIN, Api
from tests.integration.roles_support import issue_headers


async def put(
    api: Api, name: str, body: dict[str, Any], headers: dict[str, str] = ADMIN
) -> tuple[int, dict[str, Any]]:
    response = await api.client.put(f"/v1/schedules/{name}", json=body, headers=headers)
    return response.status, dict(await response.json())


async def listed(api: Api) -> dict[str, dict[str, Any]]:
    response = await api.client.get("/v1/schedules", headers=ADMIN)
    assert response.status == 200, await response.text()
    return {s["name"]: s for s in (await response.json())["schedules"]}


async def fire(api: Api) -> None:
    await api.client.app[SCHEDULE_FIRER].fire_due()


async def schedule_jobs(api: Api, name: str) -> list[dict[str, Any]]:
    response = await api.client.get("/v1/jobs?limit=1000", headers=ADMIN)
    jobs = (await response.json())["jobs"]
    return [job for job in jobs if job["submitted_by"] == f"schedule:{name}"]


async def test_an_interval_schedule_makes_its_jobs_from_the_template(api: Api) -> None:
    job = {"op": "sum", "payload": {"a": 1}, "priority": 5, "metadata": {"team": "x"}}
    status, view = await put(api, "nightly", {"every_s": 60, "job": job})
    assert status == 200
    assert view["every_s"] == 60
    assert view["cron"] is None
    assert view["job"] == job
    assert view["next_run_at"] == "2026-01-19T10:01:00Z"
    assert view["last_job_id"] is None

    api.clock.advance(60)
    await fire(api)
    (made,) = await schedule_jobs(api, "nightly")
    assert (made["op"], made["payload"], made["priority"]) == ("sum", {"a": 1}, 5)
    assert made["metadata"] == {"team": "x"}
    assert made["run_at"] == "2026-01-19T10:01:00Z"
    schedule = (await listed(api))["nightly"]
    assert schedule["last_job_id"] == made["id"]
    assert schedule["last_due_at"] == "2026-01-19T10:01:00Z"
    assert schedule["next_run_at"] == "2026-01-19T10:02:00Z"


async def test_lateness_is_measured_from_the_due_time(api: Api) -> None:
    await put(api, "tick", {"every_s": 10, "job": {"op": "sum"}})
    api.clock.advance(12)  # fired 2 s after its due time
    await fire(api)
    response = await api.client.get("/metrics")
    text = await response.text()
    assert "botfleet_schedule_lateness_seconds_count 1.0" in text
    assert 'botfleet_schedule_lateness_seconds_bucket{le="1.0"} 0.0' in text
    assert 'botfleet_schedule_lateness_seconds_bucket{le="2.5"} 1.0' in text


async def test_a_cron_schedule_lists_its_next_run_in_utc(api: Api) -> None:
    body = {"cron": "0 9 * * 1-5", "timezone": "America/New_York", "job": {"op": "sum"}}
    status, view = await put(api, "weekday", body)
    assert status == 200
    # Monday 2026-01-19 10:00 UTC is 05:00 in New York: due at 09:00 there, 14:00 UTC.
    assert view["next_run_at"] == "2026-01-19T14:00:00Z"
    assert view["timezone"] == "America/New_York"


async def test_pause_resume_and_delete(api: Api) -> None:
    body: dict[str, Any] = {"every_s": 1, "job": {"op": "sum"}}
    await put(api, "tick", body)
    status, view = await put(api, "tick", {**body, "paused": True})
    assert (status, view["paused"], view["next_run_at"]) == (200, True, None)
    api.clock.advance(10)
    await fire(api)
    assert await schedule_jobs(api, "tick") == []
    await put(api, "tick", body)
    api.clock.advance(1)
    await fire(api)
    assert len(await schedule_jobs(api, "tick")) == 1

    response = await api.client.delete("/v1/schedules/tick", headers=ADMIN)
    assert response.status == 200
    assert await response.json() == {"name": "tick", "deleted": True}
    assert await listed(api) == {}
    response = await api.client.delete("/v1/schedules/tick", headers=ADMIN)
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "schedule_not_found"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cron": "61 * * * *", "job": {"op": "sum"}}, "`$.cron`"),
        ({"cron": "not cron", "job": {"op": "sum"}}, "`$.cron`"),
        ({"every_s": 5, "timezone": "Mars/Olympus", "job": {"op": "sum"}}, "`$.timezone`"),
        ({"cron": "* * * * *", "every_s": 5, "job": {"op": "sum"}}, "`$.cron`"),
        ({"job": {"op": "sum"}}, "`$.cron`"),
        ({"every_s": 0, "job": {"op": "sum"}}, "`$.every_s`"),
        ({"every_s": 5, "job": {"op": "no spaces"}}, "`$.job.op`"),
        ({"every_s": 5, "job": {"op": "sum", "colour": "red"}}, "`$.job.colour`"),
        ({"every_s": 5, "job": {"op": "sum", "run_at": "2026-01-19T10:00:00Z"}}, "`$.job.run_at`"),
        ({"every_s": 5, "job": {"op": "sum", "idempotency_key": "k"}}, "`$.job.idempotency_key`"),
        ({"every_s": 5}, "required field `job`"),
    ],
)
async def test_bad_input_is_a_400_naming_the_field(
    api: Api, body: dict[str, Any], field: str
) -> None:
    status, answer = await put(api, "bad", body)
    assert status == 400, answer
    assert field in answer["error"]["message"]
    assert await listed(api) == {}


async def test_a_bad_name_is_a_400(api: Api) -> None:
    status, answer = await put(api, "no%20spaces", {"every_s": 5, "job": {"op": "sum"}})
    assert status == 400
    assert answer["error"]["code"] == "invalid_name"


async def test_operators_manage_schedules_readers_only_see_them(api: Api) -> None:
    operator = await issue_headers(api, "ops", "operator")
    reader = await issue_headers(api, "watcher", "reader")
    producer = await issue_headers(api, "app", "producer")
    body = {"every_s": 5, "job": {"op": "sum"}}
    assert (await put(api, "a", body, operator))[0] == 200
    assert (await put(api, "b", body, reader))[0] == 403
    assert (await put(api, "b", body, producer))[0] == 403
    response = await api.client.get("/v1/schedules", headers=reader)
    assert response.status == 200
    response = await api.client.get("/v1/schedules", headers=producer)
    assert response.status == 403
    response = await api.client.delete("/v1/schedules/a", headers=reader)
    assert response.status == 403
    response = await api.client.delete("/v1/schedules/a", headers=operator)
    assert response.status == 200
