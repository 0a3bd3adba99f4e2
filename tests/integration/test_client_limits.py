"""The client's limit calls against a real coordinator, in both forms, and submit's
`limits` (an unknown name comes back as the server's 400)."""

from __future__ import annotations

from typing import Any

import pytest

from botfleet.client import BadRequest, NotFound
from tests.integration.harness import Api


async def test_put_list_submit_and_delete(client: Any, api: Api) -> None:
    view = await client.put_limit("db", max_running=2, per_second=1.5, burst=3)
    assert (view.name, view.max_running, view.per_second, view.burst) == ("db", 2, 1.5, 3)
    (listed,) = await client.limits()
    assert listed.name == "db" and listed.running == 0
    handle = await client.submit("sum", {"a": 1}, limits=["db"])
    assert (await client.get(handle.id)).limits == ["db"]
    with pytest.raises(BadRequest) as refused:
        await client.submit("sum", {"a": 1}, limits=["nope"])
    assert "limits[0]" in refused.value.message
    assert (await client.delete_limit("db")).name == "db"
    with pytest.raises(NotFound):
        await client.delete_limit("db")
    assert await client.limits() == []
