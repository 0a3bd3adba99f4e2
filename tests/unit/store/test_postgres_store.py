"""What only PostgreSQL has: several stores (coordinators) on one database at once.

Each test gets a fresh schema, dropped afterwards. Without a reachable PostgreSQL the
tests skip, unless BOTFLEET_REQUIRE_POSTGRES=1 (CI), where they fail.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from botfleet.clock import FakeClock
from coordinator.store.base import (
    ClaimInput,
    NewJob,
    ProgressInput,
    ReportInput,
    ReportOutcome,
    StoreFull,
)
from coordinator.store.postgres import PostgresStore
from tests.unit.store.postgres_support import new_jobs, registration

pytestmark = pytest.mark.postgres


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
