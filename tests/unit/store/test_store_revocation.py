"""An operator's hold on a bot (revoke, allow, forget), on every backend, with the fake
clock; two stores on one database stand for two coordinator processes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from botfleet.clock import FakeClock
from coordinator.store.base import (
    BotRevoked,
    ClaimInput,
    ForgetOutcome,
    ReportOutcome,
    Retention,
    Store,
)
from coordinator.store.sqlite import SQLiteStore
from tests.support.backends import StoreFactory
from tests.unit.store.support import (
    JOB_LEASE_TTL_S,
    claim_ids,
    complete,
    fail,
    heartbeat,
    register,
    registration,
    submit,
)


async def test_revoke_requeues_the_jobs_it_held_without_using_an_attempt(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    held = [await submit(store, clock, max_attempts=1) for _ in range(2)]
    assert sorted(await claim_ids(store, bot.id)) == sorted(held)
    clock.advance(1)

    outcome = await store.revoke_bot(bot.id)

    assert outcome is not None
    assert sorted(outcome.requeued) == sorted(held)
    assert outcome.bot.revoked_at == clock.now()
    assert not outcome.bot.online and outcome.bot.running == ()
    for job_id in held:
        job = await store.get_job(job_id)
        assert job is not None
        assert job.state == "queued" and job.attempts_used == 0 and job.lease_until is None
        (attempt,) = await store.list_attempts(job_id)
        assert attempt.outcome == "revoked" and attempt.ended_at == clock.now()
    # Another bot takes them; one attempt each is still all they may use.
    other = await register(store, clock, bot_key="host-b/default", instance_id="b-1")
    assert sorted(await claim_ids(store, other.id)) == sorted(held)
    for job_id in held:
        job = await store.get_job(job_id)
        assert job is not None and job.attempt == 2 and job.attempts_used == 1


async def test_the_store_refuses_a_revoked_bot_in_every_process(
    store_factory: StoreFactory, clock: FakeClock
) -> None:
    first, second = store_factory(), store_factory()
    await first.open()
    await second.open()
    try:
        bot = await register(first, clock)
        job_id = await submit(first, clock)
        await claim_ids(first, bot.id)
        assert await second.revoke_bot(bot.id) is not None

        # Heartbeats and claims find no online bot; reports of its attempt are stale.
        assert await heartbeat(first, bot, running=[job_id]) is None
        claim = ClaimInput(bot.id, ["sum"], 10, JOB_LEASE_TTL_S)
        assert await first.claim_jobs(claim) is None
        assert await first.report(bot.id, [complete(job_id, attempt=1, value=1)]) == [
            ReportOutcome.CONFLICT
        ]
        assert await first.report(bot.id, [fail(job_id, attempt=1)]) == [ReportOutcome.CONFLICT]
        job = await first.get_job(job_id)
        assert job is not None and job.state == "queued" and job.result is None
    finally:
        await first.close()
        await second.close()


async def test_a_revoked_bot_reports_nothing_even_of_jobs_it_gave_back_before(
    store: Store, clock: FakeClock
) -> None:
    """A job a replaced instance gave back would take a complete of its old attempt
    (first result wins); once the bot is revoked, no result of it counts."""
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    await claim_ids(store, bot.id)
    await store.register_bot(registration(clock, instance_id="instance-2"))
    await store.revoke_bot(bot.id)

    assert await store.report(bot.id, [complete(job_id, attempt=1, value=1)]) == [
        ReportOutcome.CONFLICT
    ]
    job = await store.get_job(job_id)
    assert job is not None and job.state == "queued"


async def test_a_revoked_bot_key_cannot_register_until_allowed(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    await store.revoke_bot(bot.id)
    clock.advance(1)

    with pytest.raises(BotRevoked) as refused:
        await store.register_bot(registration(clock, instance_id="instance-2"))
    assert refused.value.bot_id == bot.id
    after = await store.get_bot(bot.id)
    assert after is not None and not after.online and after.instance_id == bot.instance_id

    allowed = await store.allow_bot(bot.id)
    assert allowed is not None and allowed.revoked_at is None and not allowed.online
    # The token it had stays dead: it registers again for a new one.
    assert allowed.token_hash == ""
    again = await store.register_bot(registration(clock, instance_id="instance-2"))
    assert again.bot.id == bot.id and again.bot.online and not again.created
    assert again.bot.revoked_at is None


async def test_revoking_twice_keeps_the_first_moment(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    first = await store.revoke_bot(bot.id)
    clock.advance(60)
    second = await store.revoke_bot(bot.id)
    assert first is not None and second is not None
    assert second.bot.revoked_at == first.bot.revoked_at
    assert second.requeued == ()


async def test_allowing_a_bot_never_revoked_keeps_its_token(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    allowed = await store.allow_bot(bot.id)
    assert allowed is not None and allowed.token_hash == bot.token_hash and allowed.online


async def test_unknown_bots(store: Store) -> None:
    assert await store.revoke_bot("bot_unknown") is None
    assert await store.allow_bot("bot_unknown") is None
    assert await store.forget_bot("bot_unknown") is ForgetOutcome.NOT_FOUND


async def test_forget_only_an_offline_bot(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    await claim_ids(store, bot.id)
    assert await store.forget_bot(bot.id) is ForgetOutcome.ONLINE

    await store.report(bot.id, [complete(job_id, value=1)])
    assert await store.deregister_bot(bot.id, bot.instance_id) == ()
    assert await store.forget_bot(bot.id) is ForgetOutcome.FORGOTTEN

    assert await store.get_bot(bot.id) is None
    job = await store.get_job(job_id)
    assert job is not None and job.bot_id == bot.id and job.state == "succeeded"
    (attempt,) = await store.list_attempts(job_id)
    assert attempt.bot_id == bot.id
    # Its bot_key registers as a new bot.
    again = await store.register_bot(registration(clock))
    assert again.created and again.bot.id != bot.id


async def test_forget_refuses_a_revoked_bot(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    await store.revoke_bot(bot.id)
    assert await store.forget_bot(bot.id) is ForgetOutcome.REVOKED
    await store.allow_bot(bot.id)
    assert await store.forget_bot(bot.id) is ForgetOutcome.FORGOTTEN


async def test_retention_keeps_revoked_bots(store: Store, clock: FakeClock) -> None:
    revoked = await register(store, clock)
    offline = await register(store, clock, bot_key="host-b/default", instance_id="b-1")
    await store.revoke_bot(revoked.id)
    await store.deregister_bot(offline.id, offline.instance_id)
    clock.advance(7200)

    await store.sweep(Retention(finished_s=None, bots_s=3600))

    assert await store.get_bot(offline.id) is None
    kept = await store.get_bot(revoked.id)
    assert kept is not None and kept.revoked_at is not None


async def test_forget_refuses_an_offline_bot_that_still_holds_jobs(
    sqlite_store: SQLiteStore, db_path: Path, clock: FakeClock
) -> None:
    """Every write that takes a bot offline gives its jobs back in the same transaction;
    should a database break that, forgetting the bot is refused rather than strand them."""
    bot = await register(sqlite_store, clock)
    await submit(sqlite_store, clock)
    await claim_ids(sqlite_store, bot.id)
    with sqlite3.connect(db_path) as other:
        other.execute("UPDATE bots SET online = 0 WHERE id = ?", (bot.id,))
    assert await sqlite_store.forget_bot(bot.id) is ForgetOutcome.RUNNING
