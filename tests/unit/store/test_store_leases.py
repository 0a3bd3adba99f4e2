"""Taking jobs back (leases modules), on every backend: the reaper, bots that went away,
and claim answers that never reached their bot."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from botfleet.clock import FakeClock
from coordinator.store.base import ClaimInput, ProgressInput, ReportOutcome, Store
from coordinator.store.rules import BOT_DEREGISTERED, LEASE_EXPIRED
from tests.unit.store.support import (
    BOT_LEASE_TTL_S,
    JOB_LEASE_TTL_S,
    RecordingListener,
    assert_no_overlapping_leases,
    claim_ids,
    complete,
    fail,
    heartbeat,
    new_job,
    register,
    submit,
)


async def test_lease_is_valid_until_its_deadline(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    await submit(store, clock)
    await claim_ids(store, bot.id)
    clock.advance(JOB_LEASE_TTL_S)
    outcome = await store.expire_leases()
    assert outcome.requeued == () and outcome.failed == ()


async def test_expired_lease_requeues_with_a_new_attempt(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock, max_attempts=3)
    await claim_ids(store, bot.id)
    clock.advance(JOB_LEASE_TTL_S + 0.001)
    outcome = await store.expire_leases()
    assert outcome.requeued == (job_id,) and outcome.failed == ()
    job = await store.get_job(job_id)
    assert job is not None
    assert (job.state, job.attempt, job.lease_until) == ("queued", 1, None)
    assert await claim_ids(store, bot.id) == [job_id]
    job = await store.get_job(job_id)
    assert job is not None and job.attempt == 2
    attempts = await store.list_attempts(job_id)
    assert [(a.attempt, a.outcome) for a in attempts] == [(1, "expired"), (2, None)]
    assert_no_overlapping_leases(attempts)


async def test_expired_lease_fails_the_job_once_attempts_are_spent(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock, max_attempts=2)
    for attempt in (1, 2):
        assert await claim_ids(store, bot.id) == [job_id]
        clock.advance(JOB_LEASE_TTL_S + 1)
        await heartbeat(store, bot)  # the bot is alive; only its job hangs
        outcome = await store.expire_leases()
        assert outcome.bots_offline == ()
        expected = ((job_id,), ()) if attempt == 1 else ((), (job_id,))
        assert (outcome.requeued, outcome.failed) == expected
    job = await store.get_job(job_id)
    assert job is not None
    assert (job.state, job.error, job.attempt) == ("failed", "lease expired", 2)
    assert job.finished_at == clock.now()
    assert await claim_ids(store, bot.id) == []


async def test_bot_lease_expiry_takes_the_bot_offline_and_requeues(
    store: Store, clock: FakeClock
) -> None:
    quiet = await register(store, clock, bot_key="host-a/quiet", instance_id="i-q")
    alive = await register(store, clock, bot_key="host-b/alive", instance_id="i-a")
    job_id = await submit(store, clock, timeout_s=3600.0)  # the job lease outlives the bot's
    await claim_ids(store, quiet.id)
    clock.advance(BOT_LEASE_TTL_S - 1)
    await heartbeat(store, alive)
    assert (await store.expire_leases()).bots_offline == ()
    clock.advance(2)
    outcome = await store.expire_leases()
    assert outcome.bots_offline == (quiet.id,)
    assert outcome.requeued == (job_id,)
    bot = await store.get_bot(quiet.id)
    assert bot is not None and not bot.online
    still = await store.get_bot(alive.id)
    assert still is not None and still.online
    (attempt,) = await store.list_attempts(job_id)
    assert attempt.outcome == "released"
    assert await claim_ids(store, alive.id) == [job_id]
    assert await store.claim_jobs(ClaimInput(quiet.id, ["sum"], 1, JOB_LEASE_TTL_S)) is None


async def test_expire_leases_twice_is_idempotent(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    ids = [o.job.id for o in await store.submit_jobs([new_job(clock) for _ in range(5)])]
    await claim_ids(store, bot.id)
    clock.advance(BOT_LEASE_TTL_S + 1)
    first = await store.expire_leases()
    second = await store.expire_leases()
    assert first.bots_offline == (bot.id,)
    assert sorted(first.requeued) == sorted(ids)
    assert second == type(second)()
    for job_id in ids:
        attempts = await store.list_attempts(job_id)
        assert len(attempts) == 1 and attempts[0].outcome == "released"


async def test_two_reapers_at_once_requeue_each_job_once(
    store_factory: object, store: Store, clock: FakeClock
) -> None:
    # A second store on the same database is a second coordinator process.
    assert callable(store_factory)
    other: Store = store_factory()
    await other.open()
    try:
        bot = await register(store, clock, max_concurrency=20)
        ids = [o.job.id for o in await store.submit_jobs([new_job(clock) for _ in range(20)])]
        await claim_ids(store, bot.id, limit=20)
        clock.advance(JOB_LEASE_TTL_S + 1)
        await heartbeat(store, bot)
        outcomes = await asyncio.gather(store.expire_leases(), other.expire_leases())
        requeued = [job_id for outcome in outcomes for job_id in outcome.requeued]
        assert sorted(requeued) == sorted(ids)
        for job_id in ids:
            (attempt,) = await store.list_attempts(job_id)
            assert attempt.outcome == "expired"
    finally:
        await other.close()


async def test_attempt_history_has_no_overlapping_live_leases(
    store: Store, clock: FakeClock
) -> None:
    one = await register(store, clock, bot_key="host-a/one", instance_id="i-one")
    two = await register(store, clock, bot_key="host-b/two", instance_id="i-two")
    job_id = await submit(store, clock, max_attempts=10)
    holders = [one, two, one, two]
    for bot in holders:
        await heartbeat(store, one)
        await heartbeat(store, two)
        assert await claim_ids(store, bot.id) == [job_id]
        clock.advance(JOB_LEASE_TTL_S + 1)
        await heartbeat(store, one)
        await heartbeat(store, two)
        await store.expire_leases()
    attempts = await store.list_attempts(job_id)
    assert [a.bot_id for a in attempts] == [bot.id for bot in holders]
    assert [a.outcome for a in attempts] == ["expired"] * 4
    assert_no_overlapping_leases(attempts)


async def test_list_attempts_of_unknown_job_is_empty(store: Store) -> None:
    assert await store.list_attempts("job_missing") == []


INTERVAL_S = 30.0  # between two heartbeats (shorter than the job lease)


async def test_two_heartbeats_without_the_job_release_it_uncharged(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock, max_attempts=1)
    assert await claim_ids(store, bot.id) == [job_id]
    claimed_at = clock.now()
    clock.advance(1)
    first = await heartbeat(store, bot)  # may have left before the claim answer came
    assert first is not None and first.released == ()
    clock.advance(INTERVAL_S)
    second = await heartbeat(store, bot)
    assert second is not None and second.released == (job_id,)
    assert second.bot.running == ()
    job = await store.get_job(job_id)
    assert job is not None
    assert (job.state, job.attempt, job.lease_until, job.run_at) == (
        "queued",
        1,
        None,
        clock.now(),
    )
    attempts = await store.list_attempts(job_id)
    assert [(a.attempt, a.outcome, a.claimed_at, a.ended_at) for a in attempts] == [
        (1, "lost", claimed_at, clock.now())
    ]
    # Uncharged: its only attempt is still to come; the fencing token still rises.
    assert await claim_ids(store, bot.id) == [job_id]
    job = await store.get_job(job_id)
    assert job is not None and (job.state, job.attempt) == ("running", 2)
    clock.advance(JOB_LEASE_TTL_S + 1)
    outcome = await store.expire_leases()
    assert outcome.failed == (job_id,)
    job = await store.get_job(job_id)
    assert job is not None and (job.state, job.error) == ("failed", LEASE_EXPIRED)
    attempts = await store.list_attempts(job_id)
    assert [(a.attempt, a.outcome) for a in attempts] == [(1, "lost"), (2, "expired")]
    assert_no_overlapping_leases(attempts)


async def test_a_job_lost_again_and_again_is_never_charged(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock, max_attempts=1)
    await heartbeat(store, bot)
    for attempt in (1, 2, 3):
        clock.advance(1)
        assert await claim_ids(store, bot.id) == [job_id]
        clock.advance(INTERVAL_S)
        assert (await heartbeat(store, bot)).released == ()
        clock.advance(INTERVAL_S)
        assert (await heartbeat(store, bot)).released == (job_id,), attempt
    # A failure of the one charged attempt fails the job for good (no attempts left).
    assert await claim_ids(store, bot.id) == [job_id]
    assert await store.report(bot.id, [fail(job_id)]) == [ReportOutcome.ACCEPTED]
    job = await store.get_job(job_id)
    assert job is not None and (job.state, job.attempt) == ("failed", 4)
    attempts = await store.list_attempts(job_id)
    assert [a.outcome for a in attempts] == ["lost", "lost", "lost", "failed"]
    assert_no_overlapping_leases(attempts)


async def test_one_heartbeat_without_the_job_keeps_it(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    await heartbeat(store, bot)  # before the claim: the previous heartbeat of the next
    clock.advance(1)
    await claim_ids(store, bot.id)
    clock.advance(INTERVAL_S)
    outcome = await heartbeat(store, bot)  # the answer may still be on its way
    assert outcome is not None and outcome.released == ()
    job = await store.get_job(job_id)
    assert job is not None and (job.state, job.bot_id) == ("running", bot.id)
    assert [a.outcome for a in await store.list_attempts(job_id)] == [None]


async def test_a_listed_job_is_kept(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    await claim_ids(store, bot.id)
    for _ in range(3):
        clock.advance(INTERVAL_S)
        outcome = await heartbeat(store, bot, running=[job_id])
        assert outcome is not None and outcome.released == ()
        assert job_id in outcome.extended


async def test_a_job_only_this_heartbeat_lists_is_kept(store: Store, clock: FakeClock) -> None:
    """The claim answer came late, after the previous heartbeat left."""
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    await claim_ids(store, bot.id)
    clock.advance(1)
    await heartbeat(store, bot)
    clock.advance(INTERVAL_S)
    outcome = await heartbeat(store, bot, running=[job_id])
    assert outcome is not None and outcome.released == () and job_id in outcome.extended


async def test_a_job_the_previous_heartbeat_listed_is_kept(store: Store, clock: FakeClock) -> None:
    """It ended on the bot since; its report is on its way."""
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    await claim_ids(store, bot.id)
    clock.advance(1)
    await heartbeat(store, bot, running=[job_id])
    clock.advance(INTERVAL_S)
    outcome = await heartbeat(store, bot)
    assert outcome is not None and outcome.released == ()
    job = await store.get_job(job_id)
    assert job is not None and job.state == "running"
    assert await store.report(bot.id, [complete(job_id, total=3)]) == [ReportOutcome.ACCEPTED]


async def test_a_late_complete_of_the_lost_attempt_is_accepted(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    await claim_ids(store, bot.id)
    clock.advance(1)
    await heartbeat(store, bot)
    clock.advance(INTERVAL_S)
    assert (await heartbeat(store, bot)).released == (job_id,)
    assert await store.report(bot.id, [fail(job_id, attempt=1)]) == [ReportOutcome.CONFLICT]
    assert (
        await store.set_progress(bot.id, ProgressInput(job_id, 1, 0.5, None))
        == ReportOutcome.CONFLICT
    )
    assert await store.report(bot.id, [complete(job_id, attempt=1, total=3)]) == [
        ReportOutcome.ACCEPTED
    ]
    job = await store.get_job(job_id)
    assert job is not None and (job.state, job.result) == ("succeeded", {"total": 3})
    assert await claim_ids(store, bot.id) == []


async def test_late_reports_while_another_bot_holds_the_job(store: Store, clock: FakeClock) -> None:
    lost = await register(store, clock, bot_key="host-a/lost", instance_id="i-lost")
    other = await register(store, clock, bot_key="host-b/other", instance_id="i-other")
    job_id = await submit(store, clock)
    await claim_ids(store, lost.id)
    clock.advance(1)
    await heartbeat(store, lost)
    clock.advance(INTERVAL_S)
    assert (await heartbeat(store, lost)).released == (job_id,)
    assert await claim_ids(store, other.id) == [job_id]
    # A fail from the lost lease: 409, the other bot's lease stands.
    assert await store.report(lost.id, [fail(job_id, attempt=1)]) == [ReportOutcome.CONFLICT]
    job = await store.get_job(job_id)
    assert job is not None and (job.state, job.bot_id, job.attempt) == ("running", other.id, 2)
    # A complete from it: the first result wins, as from any attempt.
    assert await store.report(lost.id, [complete(job_id, attempt=1, total=3)]) == [
        ReportOutcome.ACCEPTED
    ]
    assert await store.report(other.id, [fail(job_id)]) == [ReportOutcome.CONFLICT]
    attempts = await store.list_attempts(job_id)
    assert [(a.attempt, a.bot_id, a.outcome) for a in attempts] == [
        (1, lost.id, "lost"),
        (2, other.id, "cancelled"),
    ]
    assert_no_overlapping_leases(attempts)


async def test_only_this_bots_jobs_are_released(store: Store, clock: FakeClock) -> None:
    quiet = await register(store, clock, bot_key="host-a/quiet", instance_id="i-q")
    busy = await register(store, clock, bot_key="host-b/busy", instance_id="i-b")
    job_id = await submit(store, clock)
    await claim_ids(store, quiet.id)
    for _ in range(3):
        clock.advance(1)
        outcome = await heartbeat(store, busy)
        assert outcome is not None and outcome.released == ()
    job = await store.get_job(job_id)
    assert job is not None and (job.state, job.bot_id) == ("running", quiet.id)


async def test_release_makes_the_job_available(
    store: Store, clock: FakeClock, listener: RecordingListener
) -> None:
    bot = await register(store, clock)
    await submit(store, clock, op="subtract")
    await claim_ids(store, bot.id, ("subtract",))
    clock.advance(1)
    await heartbeat(store, bot)
    listener.available.clear()
    clock.advance(INTERVAL_S)
    await heartbeat(store, bot)
    await listener.until(lambda: listener.announced("subtract"))


async def test_a_bot_that_died_still_uses_up_attempts(store: Store, clock: FakeClock) -> None:
    """Lost answers are free, but a job that takes its bot down is charged each time."""
    bot = await register(store, clock, instance_id="instance-1")
    job_id = await submit(store, clock, max_attempts=2)
    await claim_ids(store, bot.id)
    clock.advance(1)
    await heartbeat(store, bot)
    clock.advance(INTERVAL_S)
    assert (await heartbeat(store, bot)).released == (job_id,)
    await claim_ids(store, bot.id)
    again = await register(store, clock, instance_id="instance-2")  # the bot crashed
    await claim_ids(store, again.id)
    assert await store.deregister_bot(again.id, again.instance_id) == (job_id,)
    job = await store.get_job(job_id)
    assert job is not None and (job.state, job.error) == ("failed", BOT_DEREGISTERED)
    attempts = await store.list_attempts(job_id)
    assert [a.outcome for a in attempts] == ["lost", "released", "released"]


async def test_a_default_timeout_sets_the_lease_of_jobs_without_their_own(
    store: Store, clock: FakeClock
) -> None:
    """The coordinator's default job timeout: a job without timeout_s is leased as if it had
    it, at the claim and at every heartbeat; a job's own timeout_s (even a shorter one) wins."""
    bot = await register(store, clock)
    plain = await submit(store, clock)
    own = await submit(store, clock, timeout_s=1.0)
    default_s = JOB_LEASE_TTL_S * 10
    jobs = await store.claim_jobs(
        ClaimInput(bot.id, ["sum"], 10, JOB_LEASE_TTL_S, default_timeout_s=default_s)
    )
    assert jobs is not None
    leases = {job.id: job.lease_until for job in jobs}
    assert leases[plain] == clock.now() + timedelta(seconds=default_s)
    assert leases[own] == clock.now() + timedelta(seconds=JOB_LEASE_TTL_S)
    assert {job.id: job.timeout_s for job in jobs} == {plain: None, own: 1.0}  # as submitted

    clock.advance(JOB_LEASE_TTL_S + 1)
    outcome = await store.expire_leases()
    assert outcome.requeued == (own,)  # only the job with its own, shorter limit
    beat = await heartbeat(store, bot, [plain], default_timeout_s=default_s)
    assert beat.extended == {plain: clock.now() + timedelta(seconds=default_s)}
