"""PostgreSQL's notices: a change in one store (coordinator) reaches the others."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from botfleet.clock import FakeClock
from coordinator.store.base import (
    ClaimInput,
    ReportInput,
)
from coordinator.store.postgres import PostgresStore
from coordinator.store.postgres.notify import decode_notice, encode_notices
from tests.unit.store.postgres_support import DEADLINE_S, new_jobs, registration
from tests.unit.store.support import RecordingListener

pytestmark = pytest.mark.postgres


async def test_a_notification_from_one_store_reaches_another_stores_listener(
    make_store: Callable[..., Awaitable[PostgresStore]], clock: FakeClock
) -> None:
    sender_hears, receiver_hears = RecordingListener(), RecordingListener()
    sender = await make_store(sender_hears)
    receiver = await make_store(receiver_hears)
    await sender.wait_listening()
    await receiver.wait_listening()

    [submitted] = await sender.submit_jobs(new_jobs(clock, 1))
    await receiver_hears.until(lambda: ("sum",) in receiver_hears.available)

    bot = (await receiver.register_bot(registration(clock, "worker"))).bot.id
    assert await receiver.claim_jobs(ClaimInput(bot, ["sum"], 1, 30))
    await receiver.report(bot, [ReportInput(submitted.job.id, "complete", result={"r": 1})])
    await sender_hears.until(lambda: submitted.job.id in sender_hears.finished)

    # Each store heard its own change once (at commit), not again through NOTIFY: by the
    # time the other store's notice has arrived, a duplicate of our own would have too.
    assert sender_hears.available.count(("sum",)) == 1
    assert receiver_hears.finished.count(submitted.job.id) == 1


async def test_a_dropped_listening_connection_comes_back(
    make_store: Callable[..., Awaitable[PostgresStore]], clock: FakeClock, pg_dsn: str
) -> None:
    hears = RecordingListener()
    receiver = await make_store(hears)
    sender = await make_store()
    await receiver.wait_listening()
    admin = await asyncpg.connect(pg_dsn)
    try:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1 AND datname = current_database()",
            receiver.listener_name,
        )
        assert killed >= 1
    finally:
        await admin.close()

    # Keep submitting until one notice gets through: the relay must have reconnected
    # (a notice sent while it was away is lost, so each try waits for its own).
    async def delivered() -> bool:
        await sender.submit_jobs(new_jobs(clock, 1))
        return bool(hears.available) or await hears.hears_within(0.05)

    async with asyncio.timeout(DEADLINE_S):  # else the listening connection did not come back
        while not await delivered():
            pass


def test_notices_are_split_below_the_notify_payload_limit() -> None:
    done = [f"job_{i:032x}" for i in range(1000)]
    payloads = encode_notices("origin", ["sum", "sum", "subtract"], done)

    assert len(payloads) > 1
    assert all(len(payload.encode()) < 8000 for payload in payloads)
    notices = [decode_notice(payload) for payload in payloads]
    assert [job for n in notices if n for job in n.done] == done
    assert [op for n in notices if n for op in n.ops] == ["sum", "subtract"]
    assert {n.origin for n in notices if n} == {"origin"}


def test_a_malformed_notice_is_ignored() -> None:
    assert decode_notice("not json") is None
