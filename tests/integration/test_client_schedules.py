"""The client's schedule calls against a real coordinator, in both forms."""

from __future__ import annotations

from typing import Any

import pytest

from botfleet.client import BadRequest, NotFound
from botfleet.protocol import messages as m
from tests.integration.harness import Api


async def test_put_list_pause_resume_and_delete(client: Any, api: Api) -> None:
    job = m.SubmitJob(op="sum", payload={"a": 1, "b": 2}, priority=3)
    created = await client.put_schedule("every-minute", job, every_s=60)
    assert (created.name, created.every_s, created.paused) == ("every-minute", 60, False)
    assert created.next_run_at == "2026-01-19T10:01:00Z"
    await client.put_schedule("nightly", job, cron="0 3 * * *", timezone="Europe/Paris")
    assert [s.name for s in await client.schedules()] == ["every-minute", "nightly"]

    paused = await client.pause_schedule("nightly")
    assert (paused.paused, paused.next_run_at, paused.cron) == (True, None, "0 3 * * *")
    assert paused.job["priority"] == 3
    resumed = await client.pause_schedule("nightly", paused=False)
    assert resumed.next_run_at == "2026-01-20T02:00:00Z"

    assert (await client.delete_schedule("nightly")).deleted
    assert [s.name for s in await client.schedules()] == ["every-minute"]
    with pytest.raises(NotFound):
        await client.delete_schedule("nightly")
    with pytest.raises(NotFound):
        await client.pause_schedule("nightly")


async def test_a_bad_cron_expression_is_a_bad_request(client: Any) -> None:
    with pytest.raises(BadRequest, match=r"\$\.cron"):
        await client.put_schedule("bad", m.SubmitJob(op="sum"), cron="every day")
