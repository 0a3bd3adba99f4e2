"""Reports (reports modules), on every backend: completions, failures, batches,
report-and-claim and progress (PROTOCOL.md's report rules)."""

from __future__ import annotations

from datetime import timedelta

from botfleet.clock import FakeClock
from coordinator.store.base import ClaimInput, ProgressInput, ReportInput, ReportOutcome, Store
from tests.unit.store.support import (
    JOB_LEASE_TTL_S,
    RecordingListener,
    claim_ids,
    complete,
    fail,
    new_job,
    register,
    submit,
)

ACCEPTED = ReportOutcome.ACCEPTED


CONFLICT = ReportOutcome.CONFLICT


FORBIDDEN = ReportOutcome.FORBIDDEN


NOT_FOUND = ReportOutcome.NOT_FOUND


async def _expire_and_reclaim(store: Store, clock: FakeClock, bot_id: str, job_id: str) -> None:
    clock.advance(JOB_LEASE_TTL_S + 1)
    await store.expire_leases()
    assert await claim_ids(store, bot_id) == [job_id]


async def test_complete_succeeds_the_job(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    await claim_ids(store, bot.id)
    clock.advance(2)
    assert await store.report(bot.id, [complete(job_id, attempt=1, total=3)]) == [ACCEPTED]
    job = await store.get_job(job_id)
    assert job is not None
    assert (job.state, job.result, job.error) == ("succeeded", {"total": 3}, None)
    assert job.finished_at == clock.now()
    assert job.lease_until is None
    (attempt,) = await store.list_attempts(job_id)
    assert (attempt.outcome, attempt.ended_at) == ("succeeded", clock.now())


async def test_same_complete_twice_is_accepted_with_one_effect(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    await claim_ids(store, bot.id)
    assert await store.report(bot.id, [complete(job_id, attempt=1, total=3)]) == [ACCEPTED]
    finished_at = clock.now()
    clock.advance(5)
    assert await store.report(bot.id, [complete(job_id, attempt=1, total=3)]) == [ACCEPTED]
    assert await store.report(bot.id, [complete(job_id, total=3)]) == [ACCEPTED]
    job = await store.get_job(job_id)
    assert job is not None
    assert (job.state, job.result, job.finished_at) == ("succeeded", {"total": 3}, finished_at)


async def test_complete_from_an_older_attempt_wins_while_not_terminal(
    store: Store, clock: FakeClock
) -> None:
    slow = await register(store, clock, bot_key="host-a/slow", instance_id="i-slow")
    other = await register(store, clock, bot_key="host-b/other", instance_id="i-other")
    job_id = await submit(store, clock)
    await claim_ids(store, slow.id)
    clock.advance(JOB_LEASE_TTL_S + 1)
    await store.expire_leases()
    assert await claim_ids(store, other.id) == [job_id]
    # The slow bot's first attempt finishes after all: the first result wins.
    assert await store.report(slow.id, [complete(job_id, attempt=1, by="slow")]) == [ACCEPTED]
    job = await store.get_job(job_id)
    assert job is not None and (job.state, job.result) == ("succeeded", {"by": "slow"})
    # The second attempt's lease is over, and its own result is now a conflict.
    attempts = await store.list_attempts(job_id)
    assert all(attempt.ended_at is not None for attempt in attempts)
    assert await store.report(other.id, [complete(job_id, attempt=2, by="other")]) == [CONFLICT]
    assert await store.report(slow.id, [complete(job_id, attempt=1, by="slow")]) == [ACCEPTED]
    job = await store.get_job(job_id)
    assert job is not None and job.result == {"by": "slow"}


async def test_complete_of_a_requeued_job_is_accepted(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    await claim_ids(store, bot.id)
    clock.advance(JOB_LEASE_TTL_S + 1)
    assert (await store.expire_leases()).requeued == (job_id,)
    assert await store.report(bot.id, [complete(job_id, attempt=1, late=True)]) == [ACCEPTED]
    job = await store.get_job(job_id)
    assert job is not None and job.state == "succeeded"
    assert await claim_ids(store, bot.id) == []


async def test_complete_after_terminal_from_another_attempt_conflicts(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    await claim_ids(store, bot.id)
    await _expire_and_reclaim(store, clock, bot.id, job_id)
    assert await store.report(bot.id, [complete(job_id, attempt=2, n=2)]) == [ACCEPTED]
    assert await store.report(bot.id, [complete(job_id, attempt=1, n=1)]) == [CONFLICT]


async def test_complete_of_a_cancelled_job_conflicts(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    await claim_ids(store, bot.id)
    await store.cancel_job(job_id)
    assert await store.report(bot.id, [complete(job_id, attempt=1)]) == [CONFLICT]
    assert await store.report(bot.id, [fail(job_id, attempt=1)]) == [CONFLICT]


async def test_fail_with_attempts_left_requeues_after_the_policy_delay(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock, max_attempts=3)
    await claim_ids(store, bot.id)
    assert await store.report(bot.id, [fail(job_id, attempt=1, error="flaky")]) == [ACCEPTED]
    job = await store.get_job(job_id)
    assert job is not None
    # The test policy waits 10 s times the attempt number.
    assert (job.state, job.error, job.attempt) == ("queued", "flaky", 1)
    assert job.run_at == clock.now() + timedelta(seconds=10)
    (attempt,) = await store.list_attempts(job_id)
    assert attempt.outcome == "failed"
    clock.advance(9.9)
    assert await claim_ids(store, bot.id) == []
    clock.advance(0.1)
    assert await claim_ids(store, bot.id) == [job_id]
    assert await store.report(bot.id, [fail(job_id, attempt=2)]) == [ACCEPTED]
    job = await store.get_job(job_id)
    assert job is not None and job.run_at == clock.now() + timedelta(seconds=20)


async def test_fail_honours_retry_after_ms(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    await claim_ids(store, bot.id)
    await store.report(bot.id, [fail(job_id, retry_after_ms=1500)])
    job = await store.get_job(job_id)
    assert job is not None and job.run_at == clock.now() + timedelta(milliseconds=1500)


async def test_fail_on_the_last_attempt_fails_for_good(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock, max_attempts=2)
    await claim_ids(store, bot.id)
    await store.report(bot.id, [fail(job_id, error="first")])
    clock.advance(10)
    await claim_ids(store, bot.id)
    assert await store.report(bot.id, [fail(job_id, error="second")]) == [ACCEPTED]
    job = await store.get_job(job_id)
    assert job is not None
    assert (job.state, job.error, job.attempt) == ("failed", "second", 2)
    assert job.finished_at == clock.now()


async def test_fail_not_retryable_fails_at_once(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock, max_attempts=5)
    await claim_ids(store, bot.id)
    assert await store.report(bot.id, [fail(job_id, error="bad input", retryable=False)]) == [
        ACCEPTED
    ]
    job = await store.get_job(job_id)
    assert job is not None and (job.state, job.error) == ("failed", "bad input")


async def test_repeated_fail_is_accepted_with_one_effect(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock, max_attempts=3)
    await claim_ids(store, bot.id)
    assert await store.report(bot.id, [fail(job_id, attempt=1)]) == [ACCEPTED]
    queued = await store.get_job(job_id)
    clock.advance(3)
    assert await store.report(bot.id, [fail(job_id, attempt=1)]) == [ACCEPTED]
    assert await store.get_job(job_id) == queued
    # Also after the job failed for good.
    clock.advance(10)
    await claim_ids(store, bot.id)
    await store.report(bot.id, [fail(job_id, attempt=2, retryable=False)])
    assert await store.report(bot.id, [fail(job_id, attempt=2, retryable=False)]) == [ACCEPTED]
    job = await store.get_job(job_id)
    assert job is not None and job.state == "failed"


async def test_fail_counts_only_from_the_lease_holder(store: Store, clock: FakeClock) -> None:
    one = await register(store, clock, bot_key="host-a/one", instance_id="i-one")
    two = await register(store, clock, bot_key="host-b/two", instance_id="i-two")
    job_id = await submit(store, clock)
    await claim_ids(store, one.id)
    clock.advance(JOB_LEASE_TTL_S + 1)
    await store.expire_leases()
    assert await claim_ids(store, two.id) == [job_id]
    # The expired holder's fail is stale; the current holder's counts.
    assert await store.report(one.id, [fail(job_id, attempt=1)]) == [CONFLICT]
    job = await store.get_job(job_id)
    assert job is not None and (job.state, job.attempt) == ("running", 2)
    assert await store.report(two.id, [fail(job_id, attempt=2)]) == [ACCEPTED]


async def test_fail_with_a_stale_attempt_of_the_same_bot_conflicts(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    await claim_ids(store, bot.id)
    await _expire_and_reclaim(store, clock, bot.id, job_id)
    assert await store.report(bot.id, [fail(job_id, attempt=1)]) == [CONFLICT]
    assert await store.report(bot.id, [fail(job_id)]) == [ACCEPTED]  # latest: attempt 2


async def test_reports_for_jobs_never_handed_to_the_bot(store: Store, clock: FakeClock) -> None:
    holder = await register(store, clock, bot_key="host-a/holder", instance_id="i-h")
    stranger = await register(store, clock, bot_key="host-b/stranger", instance_id="i-s")
    job_id = await submit(store, clock)
    queued_id = await submit(store, clock, op="subtract")
    await claim_ids(store, holder.id, ["sum"])
    assert await store.report(stranger.id, [complete(job_id)]) == [FORBIDDEN]
    assert await store.report(stranger.id, [fail(job_id)]) == [FORBIDDEN]
    assert await store.report(stranger.id, [complete(queued_id)]) == [FORBIDDEN]
    assert await store.report(stranger.id, [complete("job_doesnotexist")]) == [NOT_FOUND]
    job = await store.get_job(job_id)
    assert job is not None and job.state == "running"


async def test_batch_report_with_mixed_outcomes(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    stranger = await register(store, clock, bot_key="host-b/x", instance_id="i-x")
    ids = [o.job.id for o in await store.submit_jobs([new_job(clock) for _ in range(4)])]
    foreign = await submit(store, clock, op="subtract")
    await claim_ids(store, bot.id, limit=4)
    await claim_ids(store, stranger.id, ["subtract"])
    outcomes = await store.report(
        bot.id,
        [
            complete(ids[0], total=1),
            fail(ids[1], error="retry me"),
            fail(ids[2], error="give up", retryable=False),
            complete(ids[3], attempt=7),  # an attempt it never held
            complete(foreign),
            complete("job_missing"),
            complete(ids[0], total=1),  # a repeat inside the same batch
            complete(ids[2]),  # terminal through this batch's earlier report
        ],
    )
    assert outcomes == [
        ACCEPTED,
        ACCEPTED,
        ACCEPTED,
        CONFLICT,
        FORBIDDEN,
        NOT_FOUND,
        ACCEPTED,
        CONFLICT,
    ]
    states = [(await store.get_job(job_id)) for job_id in ids]
    assert [job.state if job else None for job in states] == [
        "succeeded",
        "queued",
        "failed",
        "running",
    ]


async def test_batch_report_of_fail_then_complete_for_one_job(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    await claim_ids(store, bot.id)
    outcomes = await store.report(bot.id, [fail(job_id, attempt=1), complete(job_id, attempt=1)])
    assert outcomes == [ACCEPTED, ACCEPTED]
    job = await store.get_job(job_id)
    assert job is not None and job.state == "succeeded"


async def test_empty_batch_report(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    assert await store.report(bot.id, []) == []


async def test_progress_from_the_holder(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    stranger = await register(store, clock, bot_key="host-b/x", instance_id="i-x")
    job_id = await submit(store, clock)
    await claim_ids(store, bot.id)
    assert await store.set_progress(bot.id, ProgressInput(job_id, 1, 0.25, "a quarter")) == ACCEPTED
    assert await store.set_progress(bot.id, ProgressInput(job_id, None, 0.5, None)) == ACCEPTED
    job = await store.get_job(job_id)
    assert job is not None and (job.progress, job.progress_message) == (0.5, None)
    assert await store.set_progress(bot.id, ProgressInput(job_id, 2, 0.6, None)) == CONFLICT
    assert (
        await store.set_progress(stranger.id, ProgressInput(job_id, None, 0.6, None)) == FORBIDDEN
    )
    assert (
        await store.set_progress(bot.id, ProgressInput("job_missing", None, 0.6, None)) == NOT_FOUND
    )
    await store.report(bot.id, [complete(job_id)])
    assert await store.set_progress(bot.id, ProgressInput(job_id, 1, 0.9, None)) == CONFLICT


async def test_progress_is_reset_by_a_new_attempt(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    await claim_ids(store, bot.id)
    await store.set_progress(bot.id, ProgressInput(job_id, 1, 0.7, "most"))
    await _expire_and_reclaim(store, clock, bot.id, job_id)
    job = await store.get_job(job_id)
    assert job is not None and job.progress is None and job.attempt == 2


async def test_report_input_defaults_to_the_latest_attempt(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    await claim_ids(store, bot.id)
    report = ReportInput(job_id=job_id, action="complete", result={"ok": True})
    assert await store.report(bot.id, [report]) == [ACCEPTED]


ACCEPTED, CONFLICT = ReportOutcome.ACCEPTED, ReportOutcome.CONFLICT


FORBIDDEN, NOT_FOUND = ReportOutcome.FORBIDDEN, ReportOutcome.NOT_FOUND


async def test_the_claim_fills_the_capacity_the_reports_free(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock, max_concurrency=2)
    held = [await submit(store, clock) for _ in range(2)]
    waiting = [await submit(store, clock) for _ in range(3)]
    assert await claim_ids(store, bot.id, limit=2) == held
    # At its cap: a claim alone gets nothing.
    assert await claim_ids(store, bot.id, limit=2) == []

    reports = [complete(held[0], total=3), fail(held[1], error="give up", retryable=False)]
    outcomes, jobs = await store.report_and_claim(
        ClaimInput(bot.id, ["sum"], 2, JOB_LEASE_TTL_S), reports
    )

    assert outcomes == [ACCEPTED, ACCEPTED]
    assert jobs is not None and [job.id for job in jobs] == waiting[:2]
    assert all(job.state == "running" and job.bot_id == bot.id for job in jobs)
    first, second = await store.get_job(held[0]), await store.get_job(held[1])
    assert first is not None and (first.state, first.result) == ("succeeded", {"total": 3})
    assert second is not None and (second.state, second.error) == ("failed", "give up")


async def test_each_report_gets_the_answer_report_gives(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    stranger = await register(store, clock, bot_key="host-b/x", instance_id="i-x")
    mine = await submit(store, clock)
    theirs = await submit(store, clock, op="subtract")
    await claim_ids(store, bot.id)
    await claim_ids(store, stranger.id, ["subtract"])
    reports = [
        complete(mine),
        complete(mine, attempt=7),
        complete(theirs),
        complete("job_missing"),
    ]

    outcomes, jobs = await store.report_and_claim(
        ClaimInput(bot.id, ["sum"], 1, JOB_LEASE_TTL_S), reports
    )

    # The repeat of an accepted complete is accepted; another attempt's conflicts.
    assert outcomes == [ACCEPTED, CONFLICT, FORBIDDEN, NOT_FOUND]
    assert jobs == []


async def test_an_unknown_bot_gets_no_jobs_and_its_reports_their_answers(
    store: Store,
) -> None:
    outcomes, jobs = await store.report_and_claim(
        ClaimInput("bot_missing", ["sum"], 2, JOB_LEASE_TTL_S), [complete("job_missing")]
    )
    assert (outcomes, jobs) == ([NOT_FOUND], None)


async def test_an_offline_bots_reports_stand_though_it_gets_no_jobs(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    await claim_ids(store, bot.id)
    await submit(store, clock)
    clock.advance(JOB_LEASE_TTL_S * 100)  # past the bot's lease and the job's
    await store.expire_leases()

    outcomes, jobs = await store.report_and_claim(
        ClaimInput(bot.id, ["sum"], 2, JOB_LEASE_TTL_S), [complete(job_id)]
    )

    # The job went back to the queue, and a result for an attempt the bot held still
    # counts (first result wins) - as `report` alone decides.
    assert (outcomes, jobs) == ([ACCEPTED], None)
    job = await store.get_job(job_id)
    assert job is not None and job.state == "succeeded"


async def test_without_reports_it_is_a_claim(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    outcomes, jobs = await store.report_and_claim(
        ClaimInput(bot.id, ["sum"], 5, JOB_LEASE_TTL_S), []
    )
    assert outcomes == [] and jobs is not None and [job.id for job in jobs] == [job_id]


async def test_listeners_hear_of_the_finished_job_and_of_the_retry(
    store: Store, clock: FakeClock, listener: RecordingListener
) -> None:
    bot = await register(store, clock)
    done, retried = await submit(store, clock), await submit(store, clock, op="subtract")
    await claim_ids(store, bot.id, ["sum", "subtract"])
    listener.available.clear()

    reports = [complete(done), fail(retried, error="again")]
    await store.report_and_claim(ClaimInput(bot.id, ["sum"], 1, JOB_LEASE_TTL_S), reports)

    await listener.until(lambda: done in listener.finished and listener.announced("subtract"))


async def test_a_batch_of_every_outcome_is_written_as_decided(
    store: Store, clock: FakeClock
) -> None:
    """One batch moves jobs to each outcome (each backend writes a batch in one
    statement per kind of write); error text keeps everything but NUL, which no
    backend can store in every place it goes."""
    bot = await register(store, clock)
    done, retried, failed = [await submit(store, clock, max_attempts=2) for _ in range(3)]
    await claim_ids(store, bot.id)
    outcomes = await store.report(
        bot.id,
        [
            complete(done, attempt=1, total=[1, "é", {"nested": None}]),
            fail(retried, attempt=1, error='quote " and é', retry_after_ms=5000),
            fail(failed, attempt=1, error="bad\x00end", retryable=False),
        ],
    )
    assert outcomes == [ACCEPTED] * 3
    jobs = {job_id: await store.get_job(job_id) for job_id in (done, retried, failed)}
    assert all(job is not None for job in jobs.values())
    succeeded, requeued, dead = jobs[done], jobs[retried], jobs[failed]
    assert succeeded is not None and requeued is not None and dead is not None
    assert (succeeded.state, succeeded.result) == (
        "succeeded",
        {"total": [1, "é", {"nested": None}]},
    )
    assert (requeued.state, requeued.error) == ("queued", 'quote " and é')
    assert requeued.run_at == clock.now() + timedelta(seconds=5)
    assert (dead.state, dead.error, dead.finished_at) == ("failed", "bad\ufffdend", clock.now())
    (attempt,) = await store.list_attempts(failed)
    assert (attempt.outcome, attempt.error) == ("failed", "bad\ufffdend")
