"""`botfleet.client` against a real coordinator over real HTTP, in both forms: every
method, and every error class from the answer that causes it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from botfleet.client import (
    ApiError,
    AsyncClient,
    BotfleetError,
    Client,
    Conflict,
    JobCancelled,
    JobFailed,
    NotFound,
    RetryPolicy,
    Unauthorized,
    Unavailable,
    WaitTimeout,
)
from botfleet.clock import FakeClock
from coordinator.app import create_app
from coordinator.store.base import Store, StoreError
from tests.integration.client_support import (
    GENEROUS_S,
    async_client,
    collect,
    finish,
    url_of,
)
from tests.integration.harness import ADMIN_TOKEN, Api, server_config


async def test_submit_then_result_waits_for_the_bot(client: Any, api: Api) -> None:
    handle = await client.submit("sum", {"a": 1, "b": 2}, priority=5, metadata={"who": "test"})
    assert handle.id.startswith("job_")
    assert handle.state == "queued"
    waiting = asyncio.create_task(client.result(handle, timeout=GENEROUS_S))
    bot = await api.register()
    assert await finish(api, bot, 1) == [handle.id]
    assert await waiting == {"result": 3}
    view = await client.get(handle.id)
    assert (view.state, view.priority, view.metadata["who"]) == ("succeeded", 5, "test")
    assert (await client.wait(handle)).result == {"result": 3}


async def test_submit_options_reach_the_job(client: Any) -> None:
    handle = await client.submit(
        "sum", {"a": 1}, delay_ms=600_000, max_attempts=2, timeout_s=9.5, idempotency_key="k1"
    )
    view = await client.get(handle)
    assert (view.max_attempts, view.timeout_s, view.idempotency_key) == (2, 9.5, "k1")
    assert view.run_at is not None and view.run_at > view.created_at


async def test_submit_and_submit_many_take_requirements(client: Any) -> None:
    one = await client.get(await client.submit("sum", {}, requires={"gpu": ["a100", "h100"]}))
    assert one.requires == {"gpu": ["a100", "h100"]}
    assert one.waiting_for == "no online bot has operation sum"
    handles = await client.submit_many([("sum", {}), ("sum", {})], requires={"gpu": "a100"})
    assert [(await client.get(handle)).requires for handle in handles] == [{"gpu": ["a100"]}] * 2


async def test_the_same_key_makes_one_job(client: Any) -> None:
    first = await client.submit("sum", {"a": 1}, idempotency_key="once")
    again = await client.submit("sum", {"a": 2}, idempotency_key="once")
    assert first.id == again.id
    generated = await client.get(await client.submit("sum", {"a": 3}))
    assert generated.idempotency_key is not None
    assert generated.idempotency_key.startswith("client-")


async def test_submit_many_in_bulk_chunks_keeps_the_order(client: Any) -> None:
    handles = await client.submit_many([("bulky", {"a": i, "b": 0}) for i in range(2500)])
    assert len({handle.id for handle in handles}) == 2500
    for index in (0, 999, 1000, 2499):
        assert (await client.get(handles[index])).payload == {"a": index, "b": 0}
    stats = await client.stats()
    assert stats.jobs_by_op["bulky"]["queued"] == 2500


async def test_a_bulk_request_over_a_mebibyte_is_sent(client: Any) -> None:
    """Past aiohttp's own threshold a body goes as a file object: no warning (an error
    under the tests' settings), and the jobs arrive whole."""
    blob = "x" * 2000
    handles = await client.submit_many([("large", {"blob": blob, "n": n}) for n in range(1000)])
    assert len(handles) == 1000
    assert (await client.get(handles[-1])).payload == {"blob": blob, "n": 999}


async def test_jobs_follows_the_cursors_and_page_gives_one(client: Any) -> None:
    handles = await client.submit_many([("listing", {"n": n}) for n in range(25)])
    views = await collect(client.jobs(op="listing", page_size=10))
    assert [view.id for view in views] == [handle.id for handle in reversed(handles)]
    page = await client.page(op="listing", state="queued", limit=10)
    assert len(page.jobs) == 10
    assert page.next_cursor is not None
    rest = await client.page(op="listing", limit=100, cursor=page.next_cursor)
    assert [view.id for view in page.jobs + rest.jobs] == [view.id for view in views]


async def test_as_completed_yields_each_final_view(client: Any, api: Api) -> None:
    handles = await client.submit_many([("sum", {"a": i, "b": 1}) for i in range(6)])
    bot = await api.register()
    await finish(api, bot, 6, fail={2})
    views = await collect(client.as_completed(handles, timeout=GENEROUS_S))
    assert sorted(view.id for view in views) == sorted(handle.id for handle in handles)
    states = sorted(view.state for view in views)
    assert states == ["failed", *["succeeded"] * 5]


async def test_failed_job_raises_job_failed_with_the_job(client: Any, api: Api) -> None:
    handle = await client.submit("sum", {"a": 1, "b": 2}, max_attempts=1)
    bot = await api.register()
    await finish(api, bot, 1, fail={0})
    with pytest.raises(JobFailed) as failed:
        await client.result(handle, timeout=GENEROUS_S)
    assert (failed.value.job.id, failed.value.job.error) == (handle.id, "boom")
    assert (failed.value.code, failed.value.message) == ("failed", "boom")
    assert isinstance(failed.value, BotfleetError)


async def test_cancel_retry_and_their_conflicts(client: Any) -> None:
    handle = await client.submit("sum", {"a": 1})
    with pytest.raises(Conflict, match="cannot be retried"):
        await client.retry(handle)  # still queued
    cancelled = await client.cancel(handle)
    assert cancelled.state == "cancelled"
    with pytest.raises(JobCancelled) as ended:
        await client.result(handle, timeout=GENEROUS_S)
    assert ended.value.job.state == "cancelled"
    with pytest.raises(Conflict) as conflict:
        await client.cancel(handle)
    assert (conflict.value.status, conflict.value.code) == (409, "job_state")
    assert "cannot be cancelled" in conflict.value.message
    assert (await client.retry(handle)).state == "queued"


async def test_a_job_not_done_in_time_is_a_timeout(client: Any) -> None:
    handle = await client.submit("nobody-runs-this", {})
    with pytest.raises(WaitTimeout) as late:
        await client.result(handle, timeout=0.2)
    assert isinstance(late.value, TimeoutError)
    with pytest.raises(TimeoutError):
        await collect(client.as_completed([handle], timeout=0.2))


async def test_unknown_ids_are_not_found(client: Any) -> None:
    with pytest.raises(NotFound) as missing:
        await client.get("job_nope")
    assert (missing.value.status, missing.value.code) == (404, "job_not_found")
    assert missing.value.message == "no job job_nope"
    with pytest.raises(NotFound):
        await client.bot("bot_nope")
    with pytest.raises(NotFound):
        await client.drain("bot_nope")


async def test_bots_and_their_commands(client: Any, api: Api) -> None:
    bot = await api.register("client-bot")
    assert [view.id for view in await client.bots()] == [bot.id]
    assert (await client.bot(bot.id)).bot_key == "client-bot"
    assert (await client.pause(bot.id)).assignment.paused is True
    assert (await client.resume(bot.id)).assignment.paused is False
    assert (await client.drain(bot.id)).pending_command == "drain"
    assert (await client.quarantine(bot.id)).pending_command == "quarantine"
    assert (await client.release(bot.id)).pending_command == "release"
    from botfleet.protocol import messages as m

    patch = m.PatchBotRequest(assignment=m.AssignmentPatch(max_concurrency=7))
    assert (await client.update_bot(bot.id, patch)).assignment.max_concurrency == 7


async def test_revoke_allow_and_forget_a_bot(client: Any, api: Api) -> None:
    bot = await api.register("client-revoked")
    revoked = await client.revoke_bot(bot.id)
    assert revoked.revoked_at is not None and revoked.state == "offline"
    with pytest.raises(Conflict):
        await client.forget_bot(bot.id)
    assert (await client.allow_bot(bot.id)).revoked_at is None
    assert await client.forget_bot(bot.id) is None
    assert [view.id for view in await client.bots()] == []
    for method in (client.revoke_bot, client.allow_bot, client.forget_bot):
        with pytest.raises(NotFound):
            await method(bot.id)


async def test_stats_and_ready(client: Any) -> None:
    await client.submit("counted", {})
    stats = await client.stats()
    assert stats.jobs["queued"] >= 1
    assert stats.jobs_by_op["counted"] == {"queued": 1}
    assert await client.ready() is True


async def test_handles_of_the_async_form(api: Api) -> None:
    async with async_client(api) as client:
        handle = await client.submit("sum", {"a": 2, "b": 2})
        assert (await handle.get()).state == "queued"
        waiting = asyncio.create_task(handle.result(timeout=GENEROUS_S))
        await finish(api, await api.register(), 1)
        assert await waiting == {"result": 4}
        assert (await handle.wait()).state == "succeeded"
        other = await client.submit("sum", {"a": 1})
        assert (await other.cancel()).state == "cancelled"


async def test_handles_of_the_blocking_form(api: Api) -> None:
    client = Client(url_of(api), token=ADMIN_TOKEN, environ={})
    try:
        handle = await asyncio.to_thread(client.submit, "sum", {"a": 2, "b": 3})
        assert (await asyncio.to_thread(handle.get)).state == "queued"
        waiting = asyncio.create_task(asyncio.to_thread(handle.result, timeout=GENEROUS_S))
        await finish(api, await api.register(), 1)
        assert await waiting == {"result": 5}
        assert (await asyncio.to_thread(handle.wait)).state == "succeeded"
        other = await asyncio.to_thread(client.submit, "sum", {"a": 1})
        assert (await asyncio.to_thread(other.cancel)).state == "cancelled"
    finally:
        await asyncio.to_thread(client.close)


async def test_a_wrong_or_missing_token_is_unauthorized(api: Api) -> None:
    for token in ("wrong", None):
        async with async_client(api, token=token) as client:
            with pytest.raises(Unauthorized) as refused:
                await client.stats()
        assert (refused.value.status, refused.value.code) == (401, "unauthorized")


class _StatsDown:
    """A store whose `stats` fails as an unreachable database does; the rest works."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def stats(self, window_s: int = 60) -> Any:
        self.calls += 1
        raise StoreError("the test's database is down")


async def test_503_is_retried_after_retry_after_then_unavailable(
    tmp_path: Path, store: Store, aiohttp_client: Any
) -> None:
    down = _StatsDown(store)
    config = server_config(tmp_path, store_retry_after_s=2)
    server: TestClient[web.Request, web.Application] = await aiohttp_client(
        create_app(config, down, FakeClock())  # type: ignore[arg-type]
    )
    clock = FakeClock()
    policy = RetryPolicy(shed_retries=3)
    async with AsyncClient(
        str(server.make_url("")), token=ADMIN_TOKEN, retry=policy, clock=clock, environ={}
    ) as client:
        with pytest.raises(Unavailable) as unavailable:
            await client.stats()
        assert await client.ready() is True  # only stats is down
    assert (unavailable.value.status, unavailable.value.code) == (503, "store_unavailable")
    assert isinstance(unavailable.value, ApiError)
    assert down.calls == 4
    assert clock.slept == [2.0, 2.0, 2.0]


async def test_one_blocking_client_serves_many_threads(api: Api) -> None:
    client = Client(url_of(api), token=ADMIN_TOKEN, environ={})
    try:
        handles = await asyncio.gather(
            *(asyncio.to_thread(client.submit, "threads", {"n": n}) for n in range(20))
        )
        views = await asyncio.gather(*(asyncio.to_thread(client.get, h) for h in handles))
    finally:
        await asyncio.to_thread(client.close)
    assert sorted(view.payload["n"] for view in views) == list(range(20))
    assert len({handle.id for handle in handles}) == 20
