"""`botfleet.client` with submit's `after`, in both forms, over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from botfleet.client import ApiError
from botfleet.protocol import messages as m
from tests.integration.harness import Api


async def test_submit_after_a_job_waits_for_it(client: Any, api: Api) -> None:
    first = await client.submit("sum", {"a": 1, "b": 2})
    second = await client.submit("sum", {"a": 3, "b": 4}, after=[first.id])
    view = await client.get(second.id)
    assert view.state == "queued" and view.waiting_for == f"waiting for {first.id} (queued)"


async def test_submit_many_names_earlier_jobs_by_index(client: Any, api: Api) -> None:
    handles = await client.submit_many(
        [("sum", {"a": 1, "b": 1}), m.SubmitJob(op="sum", after=["#0"])]
    )
    bot = await api.register()
    assert [job["id"] for job in await api.claim(bot)] == [handles[0].id]
    view = await client.get(handles[1].id)
    assert view.waiting_for == f"waiting for {handles[0].id} (running)"
    assert view.after == [handles[0].id]  # "#0" resolved


async def test_an_unknown_dependency_is_refused(client: Any) -> None:
    with pytest.raises(ApiError) as raised:
        await client.submit("sum", {}, after=["job_nowhere"])
    assert "job_nowhere" in str(raised.value)


def test_references_need_one_request() -> None:
    from botfleet.client.submitting import chunks

    jobs = [m.SubmitJob(op="sum")] + [m.SubmitJob(op="sum", after=["#0"])] * 1000
    with pytest.raises(ValueError, match="#N"):
        chunks(jobs)
