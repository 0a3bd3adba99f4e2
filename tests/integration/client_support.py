"""Both forms of the client against the in-process coordinator, driven the same way.

The coordinator under test runs on the test's event loop, so the blocking `Client`
is called from a worker thread (`asyncio.to_thread`); `Blocking` makes its methods
awaitable, and `collect` turns either form's iterators into lists.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

from botfleet.client import AsyncClient, Client
from tests.integration.harness import ADMIN_TOKEN, Api, Bot

GENEROUS_S = 30.0


def url_of(api: Api) -> str:
    return str(api.client.make_url(""))


def async_client(api: Api, **options: Any) -> AsyncClient:
    options.setdefault("token", ADMIN_TOKEN)
    return AsyncClient(url_of(api), environ={}, **options)


class Blocking:
    """A `Client` whose every method is awaited in a worker thread."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            result = await asyncio.to_thread(method, *args, **kwargs)
            if isinstance(result, Iterator):
                return await asyncio.to_thread(list, result)
            return result

        return call

    async def close(self) -> None:
        await asyncio.to_thread(self.client.close)


async def collect(result: Any) -> list[Any]:
    """A list from an async iterator (`AsyncClient`) or from `Blocking`'s coroutine."""
    if isinstance(result, AsyncIterator):
        return [item async for item in result]
    return list(await result)


async def finish(api: Api, bot: Bot, count: int, fail: set[int] | None = None) -> list[str]:
    """Claim `count` jobs as `bot` and report them: the ones at the indexes in `fail` fail
    (not retryable), the others succeed with a + b. Returns the ids in claim order."""
    done: list[str] = []
    while len(done) < count:  # a bot holds only as many jobs as its slots
        claimed = await api.claim(bot, limit=count - len(done))
        assert claimed, f"nothing to claim after {len(done)} of {count}"
        for job in claimed:
            if fail and len(done) in fail:
                body = {"instance_id": bot.instance_id, "error": "boom", "retryable": False}
                status, answer = await api.post(f"/v1/jobs/{job['id']}/fail", body, bot.headers)
            else:
                total = job["payload"]["a"] + job["payload"]["b"]
                body = {"instance_id": bot.instance_id, "result": {"result": total}}
                path = f"/v1/jobs/{job['id']}/complete"
                status, answer = await api.post(path, body, bot.headers)
            assert status == 200, answer
            done.append(job["id"])
    return done
