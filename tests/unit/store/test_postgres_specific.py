"""What only PostgreSQL has: several stores (coordinators) on one database at once.

Each test gets a fresh schema, dropped afterwards. Without a reachable PostgreSQL the
tests skip, unless BOTFLEET_REQUIRE_POSTGRES=1 (CI), where they fail.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from botfleet.clock import FakeClock
from coordinator.store.base import (
    ClaimInput,
    NewJob,
    ProgressInput,
    Registration,
    ReportInput,
    ReportOutcome,
    StoreFull,
)
from coordinator.store.migrations import load_migrations
from coordinator.store.postgres import PostgresStore
from coordinator.store.postgres.notify import decode_notice, encode_notices

pytestmark = pytest.mark.postgres

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
DEADLINE_S = 30.0


@pytest.fixture
async def pg_dsn() -> str:
    dsn = os.environ.get("BOTFLEET_TEST_PG_DSN", DEFAULT_DSN)
    try:
        connection = await asyncpg.connect(dsn, timeout=5)
    except (OSError, asyncpg.PostgresError) as error:
        reason = f"PostgreSQL unreachable at {dsn}: {error}"
        if os.environ.get("BOTFLEET_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    await connection.close()
    return dsn


@pytest.fixture
async def schema(pg_dsn: str) -> AsyncIterator[str]:
    name = f"botfleet_t_{uuid.uuid4().hex[:12]}"
    yield name
    connection = await asyncpg.connect(pg_dsn)
    try:
        await connection.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    finally:
        await connection.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_store(
    pg_dsn: str, schema: str, clock: FakeClock
) -> AsyncIterator[Callable[..., Awaitable[PostgresStore]]]:
    """Open stores on the test's schema (as several coordinators would); all closed at the end."""
    stores: list[PostgresStore] = []

    async def make(listener: Recorder | None = None) -> PostgresStore:
        store = PostgresStore(pg_dsn, clock, lambda attempt: 1.0, schema=schema, pool_max=5)
        stores.append(store)
        if listener is not None:
            store.set_listener(listener)
        await store.open()
        return store

    yield make
    for store in stores:
        await store.close()


class Recorder:
    """A StoreListener that remembers what it was told."""

    def __init__(self) -> None:
        self.available: list[tuple[str, ...]] = []
        self.finished: list[str] = []

    def jobs_available(self, operations: Sequence[str], count: int | None = None) -> None:
        self.available.append(tuple(operations))

    def job_finished(self, job_id: str) -> None:
        self.finished.append(job_id)


async def eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def registration(clock: FakeClock, key: str, max_concurrency: int = 1000) -> Registration:
    now = clock.now()
    return Registration(
        bot_key=key,
        instance_id=f"{key}-instance",
        name=key,
        version="1.0.0",
        capabilities=("sum",),
        resources={},
        constraints={},
        meta={},
        token_hash="hash",
        token_expires_at=now + timedelta(hours=1),
        lease_until=now + timedelta(seconds=120),
        default_max_concurrency=max_concurrency,
    )


def new_jobs(clock: FakeClock, count: int, max_attempts: int = 3) -> list[NewJob]:
    return [
        NewJob("sum", {"a": i, "b": 1}, clock.now(), priority=i % 3, max_attempts=max_attempts)
        for i in range(count)
    ]


async def test_concurrent_claims_from_two_stores_never_hand_a_job_twice(
    make_store: Callable[..., Awaitable[PostgresStore]], clock: FakeClock
) -> None:
    first, second = await make_store(), await make_store()
    await first.submit_jobs(new_jobs(clock, 300))
    bots = [
        (await (first if i % 2 else second).register_bot(registration(clock, f"bot{i}"))).bot.id
        for i in range(6)
    ]

    claims = [
        (first if i % 2 else second).claim_jobs(ClaimInput(bots[i % len(bots)], ["sum"], 7, 60))
        for i in range(60)
    ]
    handed = [job for batch in await asyncio.gather(*claims) for job in batch or []]

    counts = Counter(job.id for job in handed)
    assert counts and max(counts.values()) == 1
    assert len(handed) == 300  # 60 claims of 7 cover every job once
    assert {job.attempt for job in handed} == {1}
    for job in handed[:20]:
        attempts = await first.list_attempts(job.id)
        assert [(a.attempt, a.bot_id) for a in attempts] == [(1, job.bot_id)]


async def test_concurrent_claims_of_one_bot_respect_its_max_concurrency(
    make_store: Callable[..., Awaitable[PostgresStore]], clock: FakeClock
) -> None:
    first, second = await make_store(), await make_store()
    await first.submit_jobs(new_jobs(clock, 50))
    bot = (await first.register_bot(registration(clock, "narrow", max_concurrency=5))).bot.id

    batches = await asyncio.gather(
        *[
            (first if i % 2 else second).claim_jobs(ClaimInput(bot, ["sum"], 5, 60))
            for i in range(10)
        ]
    )

    assert sum(len(batch or []) for batch in batches) == 5
    record = await second.get_bot(bot)
    assert record is not None and len(record.running) == 5


async def test_two_reapers_at_once_requeue_each_expired_job_once(
    make_store: Callable[..., Awaitable[PostgresStore]], clock: FakeClock
) -> None:
    first, second = await make_store(), await make_store()
    await first.submit_jobs(new_jobs(clock, 40, max_attempts=3))
    await first.submit_jobs(new_jobs(clock, 20, max_attempts=1))
    bot = (await first.register_bot(registration(clock, "holder"))).bot.id
    claimed = await first.claim_jobs(ClaimInput(bot, ["sum"], 100, 30))
    assert claimed is not None and len(claimed) == 60
    clock.advance(31)  # job leases (30 s) ran out; the bot's lease (120 s) did not

    outcomes = await asyncio.gather(*[store.expire_leases() for store in (first, second) * 3])

    requeued = Counter(job_id for outcome in outcomes for job_id in outcome.requeued)
    failed = Counter(job_id for outcome in outcomes for job_id in outcome.failed)
    assert len(requeued) == 40 and set(requeued.values()) == {1}
    assert len(failed) == 20 and set(failed.values()) == {1}
    for job in claimed:
        record = await second.get_job(job.id)
        assert record is not None and record.attempt == 1
        attempts = await second.list_attempts(job.id)
        assert [(a.attempt, a.outcome) for a in attempts] == [(1, "expired")]
        assert record.state == ("queued" if job.max_attempts == 3 else "failed")


async def test_two_reapers_at_once_take_a_silent_bot_offline_once(
    make_store: Callable[..., Awaitable[PostgresStore]], clock: FakeClock
) -> None:
    first, second = await make_store(), await make_store()
    await first.submit_jobs(new_jobs(clock, 10))
    bot = (await first.register_bot(registration(clock, "silent"))).bot.id
    claimed = await first.claim_jobs(ClaimInput(bot, ["sum"], 10, 600))
    assert claimed is not None and len(claimed) == 10
    clock.advance(121)  # the bot's lease ran out, its jobs' leases did not

    outcomes = await asyncio.gather(*[store.expire_leases() for store in (first, second) * 2])

    assert [bot_id for outcome in outcomes for bot_id in outcome.bots_offline] == [bot]
    requeued = [job_id for outcome in outcomes for job_id in outcome.requeued]
    assert sorted(requeued) == sorted(job.id for job in claimed)
    for job in claimed:
        attempts = await second.list_attempts(job.id)
        assert [(a.attempt, a.outcome) for a in attempts] == [(1, "released")]


async def test_complete_from_two_attempts_through_two_stores_one_wins(
    make_store: Callable[..., Awaitable[PostgresStore]], clock: FakeClock
) -> None:
    first, second = await make_store(), await make_store()
    [submitted] = await first.submit_jobs(new_jobs(clock, 1))
    slow = (await first.register_bot(registration(clock, "slow"))).bot.id
    fast = (await second.register_bot(registration(clock, "fast"))).bot.id
    assert await first.claim_jobs(ClaimInput(slow, ["sum"], 1, 30))
    clock.advance(31)
    await second.expire_leases()
    assert await second.claim_jobs(ClaimInput(fast, ["sum"], 1, 30))

    outcomes = await asyncio.gather(
        first.report(slow, [ReportInput(submitted.job.id, "complete", 1, result={"by": "slow"})]),
        second.report(fast, [ReportInput(submitted.job.id, "complete", 2, result={"by": "fast"})]),
    )

    assert sorted(outcome.value for [outcome] in outcomes) == ["accepted", "conflict"]
    job = await first.get_job(submitted.job.id)
    assert job is not None and job.state == "succeeded"
    winner = "slow" if outcomes[0] == [ReportOutcome.ACCEPTED] else "fast"
    assert job.result == {"by": winner}
    attempts = await first.list_attempts(submitted.job.id)
    assert all(attempt.ended_at is not None for attempt in attempts)


async def test_a_notification_from_one_store_reaches_another_stores_listener(
    make_store: Callable[..., Awaitable[PostgresStore]], clock: FakeClock
) -> None:
    sender_hears, receiver_hears = Recorder(), Recorder()
    sender = await make_store(sender_hears)
    receiver = await make_store(receiver_hears)
    await sender.wait_listening()
    await receiver.wait_listening()

    [submitted] = await sender.submit_jobs(new_jobs(clock, 1))
    await eventually(lambda: ("sum",) in receiver_hears.available, "jobs_available on B")

    bot = (await receiver.register_bot(registration(clock, "worker"))).bot.id
    assert await receiver.claim_jobs(ClaimInput(bot, ["sum"], 1, 30))
    await receiver.report(bot, [ReportInput(submitted.job.id, "complete", result={"r": 1})])
    await eventually(lambda: submitted.job.id in sender_hears.finished, "job_finished on A")

    # Each store heard its own change once (at commit), not again through NOTIFY: by the
    # time the other store's notice has arrived, a duplicate of our own would have too.
    assert sender_hears.available.count(("sum",)) == 1
    assert receiver_hears.finished.count(submitted.job.id) == 1


async def test_a_dropped_listening_connection_comes_back(
    make_store: Callable[..., Awaitable[PostgresStore]], clock: FakeClock, pg_dsn: str
) -> None:
    hears = Recorder()
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

    # Keep submitting until one notice gets through: the relay must have reconnected.
    async def delivered() -> bool:
        await sender.submit_jobs(new_jobs(clock, 1))
        return bool(hears.available)

    deadline = time.monotonic() + DEADLINE_S
    while not await delivered():
        assert time.monotonic() < deadline, "the listening connection did not come back"
        await asyncio.sleep(0.05)


async def test_migrations_are_idempotent(
    make_store: Callable[..., Awaitable[PostgresStore]], pg_dsn: str, schema: str
) -> None:
    store = await make_store()
    await store.close()
    await store.open()  # migrates again: nothing to do
    await store.ping()
    again = await make_store()
    await again.ping()

    assert await _versions(pg_dsn, schema) == _known_versions()


async def test_stores_opening_at_once_migrate_once(
    make_store: Callable[..., Awaitable[PostgresStore]], pg_dsn: str, schema: str
) -> None:
    stores = await asyncio.gather(*[make_store() for _ in range(4)])

    for store in stores:
        await store.ping()
    assert await _versions(pg_dsn, schema) == _known_versions()


async def _versions(dsn: str, schema: str) -> list[Any]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(f"SELECT version FROM {schema}.schema_version ORDER BY 1")
    finally:
        await connection.close()
    return [row["version"] for row in rows]


def _known_versions() -> list[int]:
    return [migration.version for migration in load_migrations("postgres_migrations")]


def test_a_schema_name_that_is_not_a_plain_identifier_is_refused(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="schema"):
        PostgresStore("postgresql://unused", clock, lambda attempt: 1.0, schema="x; DROP")


async def test_text_with_a_nul_character_is_stored_not_refused(
    make_store: Callable[..., Awaitable[PostgresStore]], clock: FakeClock
) -> None:
    """PostgreSQL text cannot hold NUL; an exception's message may contain one."""
    store = await make_store()
    [submitted] = await store.submit_jobs(
        [NewJob("sum", {"a": "\x00"}, clock.now(), max_attempts=1, idempotency_key="k\x00")]
    )
    bot = (await store.register_bot(registration(clock, "nul\x00bot"))).bot
    assert await store.claim_jobs(ClaimInput(bot.id, ["sum"], 1, 30))
    progress = await store.set_progress(
        bot.id, ProgressInput(submitted.job.id, None, 0.5, "half\x00way")
    )
    outcome = await store.report(bot.id, [ReportInput(submitted.job.id, "fail", error="bad\x00")])

    assert progress is ReportOutcome.ACCEPTED
    assert outcome == [ReportOutcome.ACCEPTED]
    job = await store.get_job(submitted.job.id)
    assert job is not None and job.state == "failed"
    assert job.error == "bad\ufffd" and job.payload == {"a": "\x00"}
    [again] = await store.submit_jobs([NewJob("sum", {}, clock.now(), idempotency_key="k\x00")])
    assert again.job.id == submitted.job.id and not again.created


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


async def test_a_user_who_owns_only_its_schema_can_open_the_store(
    pg_dsn: str, schema: str, clock: FakeClock
) -> None:
    role = f"{schema}_owner"
    admin = await asyncpg.connect(pg_dsn)
    try:
        # A password too, so the test works where the server wants one (not only trust).
        await admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{role}'")
        await admin.execute(f"CREATE SCHEMA {schema} AUTHORIZATION {role}")
        parts = urlsplit(pg_dsn)
        netloc = f"{role}:{role}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        store = PostgresStore(
            urlunsplit(parts._replace(netloc=netloc)), clock, lambda attempt: 1.0, schema=schema
        )
        try:
            await store.open()
            await store.submit_jobs(new_jobs(clock, 1))
        finally:
            await store.close()
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.execute(f"DROP ROLE IF EXISTS {role}")
        await admin.close()


async def test_a_full_disk_is_store_full_and_writes_nothing(
    make_store: Callable[..., Awaitable[PostgresStore]], pg_dsn: str, schema: str, clock: FakeClock
) -> None:
    """PostgreSQL's own disk-full error (SQLSTATE 53100, raised here by a trigger as the
    server raises it when it cannot extend a file) is `StoreFull`; the write rolls back."""
    store = await make_store()
    connection = await asyncpg.connect(pg_dsn)
    try:
        await connection.execute(
            f"""
            CREATE FUNCTION {schema}.no_room() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'could not extend file: No space left on device'
                    USING ERRCODE = '53100';
            END $$;
            CREATE TRIGGER no_room BEFORE INSERT ON {schema}.jobs
                FOR EACH ROW EXECUTE FUNCTION {schema}.no_room();
            """
        )
        with pytest.raises(StoreFull, match="No space left on device"):
            await store.submit_jobs(new_jobs(clock, 3))
        assert (await store.stats()).jobs_by_state.get("queued", 0) == 0
        await connection.execute(f"DROP TRIGGER no_room ON {schema}.jobs")
        outcomes = await store.submit_jobs(new_jobs(clock, 3))
        assert all(outcome.created for outcome in outcomes)
    finally:
        await connection.close()
