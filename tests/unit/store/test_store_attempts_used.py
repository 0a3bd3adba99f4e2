"""`JobRecord.attempts_used`, on every backend: the attempts charged against max_attempts.
Lost claims and the attempts before an operator's retry raise `attempt` (the fencing
number) without charging the job, so `attempt` may pass max_attempts; attempts_used,
read through every verb that returns a job, never does."""

from __future__ import annotations

from botfleet.clock import FakeClock
from coordinator.store.base import ClaimInput, JobQuery, JobRecord, ReportOutcome, Store
from tests.unit.store.support import (
    JOB_LEASE_TTL_S,
    complete,
    fail,
    heartbeat,
    new_job,
    register,
    submit,
)

INTERVAL_S = 30.0  # between two heartbeats (shorter than the job lease)


async def _read(store: Store, job_id: str) -> JobRecord:
    """The job by id and in the listing, which must agree."""
    job = await store.get_job(job_id)
    assert job is not None
    listed, _ = await store.list_jobs(JobQuery(None, None, 100, None))
    assert [j.attempts_used for j in listed if j.id == job_id] == [job.attempts_used]
    return job


async def _claim(store: Store, bot_id: str, job_id: str) -> JobRecord:
    jobs = await store.claim_jobs(ClaimInput(bot_id, ("sum",), 10, JOB_LEASE_TTL_S))
    assert jobs is not None and [job.id for job in jobs] == [job_id]
    return jobs[0]


async def test_lost_claims_raise_the_attempt_but_not_the_attempts_used(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock, max_attempts=2)
    assert (await _read(store, job_id)).attempts_used == 0
    await heartbeat(store, bot)
    for number in (1, 2, 3):
        clock.advance(1)
        claimed = await _claim(store, bot.id, job_id)
        assert (claimed.attempt, claimed.attempts_used) == (number, 1)
        clock.advance(INTERVAL_S)
        await heartbeat(store, bot)
        clock.advance(INTERVAL_S)
        assert (await heartbeat(store, bot)).released == (job_id,)
        job = await _read(store, job_id)
        assert (job.state, job.attempt, job.attempts_used) == ("queued", number, 0)
    # Two charged attempts, both failed: the attempt number is past max_attempts, the
    # attempts used are exactly max_attempts.
    claimed = await _claim(store, bot.id, job_id)
    assert (claimed.attempt, claimed.attempts_used) == (4, 1)
    assert await store.report(bot.id, [fail(job_id)]) == [ReportOutcome.ACCEPTED]
    job = await _read(store, job_id)
    assert (job.state, job.attempt, job.attempts_used) == ("queued", 4, 1)
    assert job.run_at > clock.now()  # the retry delay
    clock.advance((job.run_at - clock.now()).total_seconds())
    claimed = await _claim(store, bot.id, job_id)
    assert (claimed.attempt, claimed.attempts_used) == (5, 2)
    assert await store.report(bot.id, [fail(job_id)]) == [ReportOutcome.ACCEPTED]
    job = await _read(store, job_id)
    assert (job.state, job.attempt, job.attempts_used, job.max_attempts) == ("failed", 5, 2, 2)
    assert [a.outcome for a in await store.list_attempts(job_id)] == [
        "lost",
        "lost",
        "lost",
        "failed",
        "failed",
    ]


async def test_an_operators_retry_starts_the_count_again(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock, max_attempts=1)
    await _claim(store, bot.id, job_id)
    assert await store.report(bot.id, [fail(job_id, retryable=False)]) == [ReportOutcome.ACCEPTED]
    outcome, retried = await store.retry_job(job_id)
    assert outcome == ReportOutcome.ACCEPTED and retried is not None
    assert (retried.state, retried.attempt, retried.attempts_used) == ("queued", 1, 0)
    claimed = await _claim(store, bot.id, job_id)
    assert (claimed.attempt, claimed.attempts_used) == (2, 1)
    outcome, cancelled = await store.cancel_job(job_id)
    assert outcome == ReportOutcome.ACCEPTED and cancelled is not None
    assert (cancelled.state, cancelled.attempt, cancelled.attempts_used) == ("cancelled", 2, 1)
    # Cancelling it again is refused, and answers with the job as it is.
    outcome, unchanged = await store.cancel_job(job_id)
    assert outcome == ReportOutcome.CONFLICT and unchanged is not None
    assert (unchanged.attempt, unchanged.attempts_used) == (2, 1)


async def test_submit_and_resubmit_answer_with_the_attempts_used(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    (first,) = await store.submit_jobs([new_job(clock, idempotency_key="k")])
    assert (first.created, first.job.attempt, first.job.attempts_used) == (True, 0, 0)
    await _claim(store, bot.id, first.job.id)
    assert await store.report(bot.id, [complete(first.job.id, total=3)]) == [ReportOutcome.ACCEPTED]
    (again,) = await store.submit_jobs([new_job(clock, idempotency_key="k")])
    assert (again.created, again.job.id) == (False, first.job.id)
    assert (again.job.state, again.job.attempt, again.job.attempts_used) == ("succeeded", 1, 1)
