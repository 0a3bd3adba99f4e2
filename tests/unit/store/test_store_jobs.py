"""The job verbs (jobs modules), on every backend: submitting, claiming, cancelling,
retrying, and the attempts a job has used."""

from __future__ import annotations

from datetime import timedelta

from botfleet.clock import FakeClock
from coordinator.store.base import (
    BotUpdate,
    ClaimInput,
    JobQuery,
    JobRecord,
    ReportOutcome,
    Store,
)
from tests.unit.store.support import (
    JOB_LEASE_TTL_S,
    claim_ids,
    complete,
    fail,
    heartbeat,
    new_job,
    register,
    submit,
)


async def test_submit_returns_a_queued_job(store: Store, clock: FakeClock) -> None:
    (outcome,) = await store.submit_jobs(
        [new_job(clock, priority=3, max_attempts=5, timeout_s=60.0, metadata={"trace": "t"})]
    )
    assert outcome.created
    job = outcome.job
    assert job.id.startswith("job_")
    assert (job.state, job.attempt, job.priority, job.max_attempts) == ("queued", 0, 3, 5)
    assert job.created_at == clock.now() and job.run_at == clock.now()
    stored = await store.get_job(job.id)
    assert stored is not None
    assert stored.payload == {"a": 1, "b": 2}
    assert stored.metadata == {"trace": "t"}
    assert stored.timeout_s == 60.0
    assert (stored.state, stored.bot_id, stored.result, stored.error) == (
        "queued",
        None,
        None,
        None,
    )


async def test_same_idempotency_key_gives_the_first_job(store: Store, clock: FakeClock) -> None:
    (first,) = await store.submit_jobs([new_job(clock, idempotency_key="order-42")])
    (again,) = await store.submit_jobs(
        [new_job(clock, idempotency_key="order-42", payload={"other": True})]
    )
    assert first.created and not again.created
    assert again.job.id == first.job.id
    assert again.job.payload == {"a": 1, "b": 2}
    page, _ = await store.list_jobs(JobQuery(None, None, 10, None))
    assert [job.id for job in page] == [first.job.id]


async def test_idempotency_key_repeated_within_one_bulk(store: Store, clock: FakeClock) -> None:
    outcomes = await store.submit_jobs(
        [
            new_job(clock, idempotency_key="k"),
            new_job(clock),
            new_job(clock, idempotency_key="k"),
        ]
    )
    assert [o.created for o in outcomes] == [True, True, False]
    assert outcomes[2].job.id == outcomes[0].job.id
    assert len({o.job.id for o in outcomes}) == 2


async def test_bulk_insert_keeps_order_and_ids_are_unique(store: Store, clock: FakeClock) -> None:
    outcomes = await store.submit_jobs([new_job(clock, payload={"i": i}) for i in range(500)])
    assert all(o.created for o in outcomes)
    ids = [o.job.id for o in outcomes]
    assert len(set(ids)) == 500
    stored = await store.get_job(ids[123])
    assert stored is not None and stored.payload == {"i": 123}
    stats = await store.stats()
    assert stats.jobs_by_state["queued"] == 500


async def test_claim_takes_priority_then_fifo(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    low_first = await submit(store, clock, priority=0)
    high = await submit(store, clock, priority=10)
    low_second = await submit(store, clock, priority=0)
    middle = await submit(store, clock, op="subtract", priority=5)
    jobs = await store.claim_jobs(ClaimInput(bot.id, ["sum", "subtract"], 10, JOB_LEASE_TTL_S))
    assert jobs is not None
    assert [job.id for job in jobs] == [high, middle, low_first, low_second]
    for job in jobs:
        assert job.state == "running"
        assert job.attempt == 1
        assert job.bot_id == bot.id
        assert job.started_at == clock.now()
        assert job.lease_until == clock.now() + timedelta(seconds=JOB_LEASE_TTL_S)


async def test_claim_in_small_batches_keeps_the_order(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    ids = [o.job.id for o in await store.submit_jobs([new_job(clock) for _ in range(7)])]
    taken: list[str] = []
    for _ in range(4):
        taken += await claim_ids(store, bot.id, limit=2)
    assert taken == ids


async def test_lease_is_the_job_timeout_when_larger(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    await submit(store, clock, timeout_s=600.0)
    jobs = await store.claim_jobs(ClaimInput(bot.id, ["sum"], 1, JOB_LEASE_TTL_S))
    assert jobs is not None
    assert jobs[0].lease_until == clock.now() + timedelta(seconds=600)
    assert jobs[0].timeout_s == 600.0


async def test_delayed_job_is_not_claimable_before_run_at(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    delayed = await submit(store, clock, delay_s=5.0, priority=100)
    now = await submit(store, clock)
    assert await claim_ids(store, bot.id) == [now]
    clock.advance(4.999)
    assert await claim_ids(store, bot.id) == []
    clock.advance(0.001)
    assert await claim_ids(store, bot.id) == [delayed]


async def test_claim_limit(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    await store.submit_jobs([new_job(clock) for _ in range(5)])
    assert len(await claim_ids(store, bot.id, limit=3)) == 3
    assert len(await claim_ids(store, bot.id, limit=3)) == 2
    assert await claim_ids(store, bot.id, limit=3) == []


async def test_claim_only_requested_operations(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    total = await submit(store, clock, op="sum")
    difference = await submit(store, clock, op="subtract")
    assert await claim_ids(store, bot.id, ["subtract"]) == [difference]
    assert await claim_ids(store, bot.id, ["sum"]) == [total]


async def test_claim_only_assigned_operations(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock, capabilities=("sum",))
    await submit(store, clock, op="subtract")
    assert await claim_ids(store, bot.id, ["sum", "subtract"]) == []
    await store.update_bot(bot.id, BotUpdate(operations=["sum", "subtract"]))
    assert len(await claim_ids(store, bot.id, ["sum", "subtract"])) == 1


async def test_claim_operations_are_requested_and_assigned(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock, capabilities=("sum", "subtract", "resize"))
    await store.update_bot(bot.id, BotUpdate(operations=["sum", "resize"]))
    resize = await submit(store, clock, op="resize")
    await submit(store, clock, op="subtract")
    await submit(store, clock, op="sum")
    assert await claim_ids(store, bot.id, ["subtract", "resize"]) == [resize]


async def test_paused_bot_gets_nothing(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    await submit(store, clock)
    await store.update_bot(bot.id, BotUpdate(paused=True))
    assert await claim_ids(store, bot.id) == []
    await store.update_bot(bot.id, BotUpdate(paused=False))
    assert len(await claim_ids(store, bot.id)) == 1


async def test_claim_never_exceeds_max_concurrency(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock, max_concurrency=3)
    assert bot.assignment.max_concurrency == 3
    await store.submit_jobs([new_job(clock) for _ in range(10)])
    first = await claim_ids(store, bot.id, limit=2)
    assert len(first) == 2
    assert len(await claim_ids(store, bot.id, limit=10)) == 1
    assert await claim_ids(store, bot.id, limit=10) == []
    await store.report(bot.id, [complete(first[0], total=3)])
    assert len(await claim_ids(store, bot.id, limit=10)) == 1


async def test_unknown_or_offline_bot_claims_none(store: Store, clock: FakeClock) -> None:
    await submit(store, clock)
    assert await store.claim_jobs(ClaimInput("bot_unknown", ["sum"], 1, JOB_LEASE_TTL_S)) is None
    bot = await register(store, clock)
    assert await store.deregister_bot(bot.id, bot.instance_id) == ()
    assert await store.claim_jobs(ClaimInput(bot.id, ["sum"], 1, JOB_LEASE_TTL_S)) is None


async def test_a_job_is_handed_out_once(store: Store, clock: FakeClock) -> None:
    one = await register(store, clock, bot_key="host-a/one", instance_id="i-one")
    two = await register(store, clock, bot_key="host-b/two", instance_id="i-two")
    await store.submit_jobs([new_job(clock) for _ in range(6)])
    first = await claim_ids(store, one.id, limit=4)
    second = await claim_ids(store, two.id, limit=4)
    assert len(first) == 4 and len(second) == 2
    assert not set(first) & set(second)


ACCEPTED = ReportOutcome.ACCEPTED


CONFLICT = ReportOutcome.CONFLICT


NOT_FOUND = ReportOutcome.NOT_FOUND


async def test_cancel_a_queued_job(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    outcome, job = await store.cancel_job(job_id)
    assert outcome == ACCEPTED
    assert job is not None and (job.state, job.finished_at) == ("cancelled", clock.now())
    assert await claim_ids(store, bot.id) == []


async def test_cancel_a_running_job_tells_its_bot(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    await claim_ids(store, bot.id)
    outcome, job = await store.cancel_job(job_id)
    assert outcome == ACCEPTED and job is not None and job.state == "cancelled"
    (attempt,) = await store.list_attempts(job_id)
    assert (attempt.outcome, attempt.ended_at) == ("cancelled", clock.now())
    beat = await heartbeat(store, bot, [job_id])
    assert beat is not None and beat.cancel == (job_id,) and beat.extended == {}
    clock.advance(JOB_LEASE_TTL_S + 1)
    await heartbeat(store, bot)
    assert (await store.expire_leases()).requeued == ()


async def test_cancel_a_terminal_job_conflicts(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    await claim_ids(store, bot.id)
    await store.report(bot.id, [complete(job_id, total=3)])
    outcome, job = await store.cancel_job(job_id)
    assert outcome == CONFLICT
    assert job is not None and (job.state, job.result) == ("succeeded", {"total": 3})
    assert await store.cancel_job("job_missing") == (NOT_FOUND, None)


async def test_retry_a_failed_job_gives_fresh_attempts(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock, max_attempts=2)
    await claim_ids(store, bot.id)
    await store.report(bot.id, [fail(job_id, retryable=False, error="broken")])
    clock.advance(60)
    outcome, job = await store.retry_job(job_id)
    assert outcome == ACCEPTED and job is not None
    assert (job.state, job.attempt, job.run_at) == ("queued", 1, clock.now())
    assert (job.finished_at, job.result) == (None, None)
    # Two fresh attempts: numbers keep rising, the budget starts again.
    for expected in (2, 3):
        assert await claim_ids(store, bot.id) == [job_id]
        clock.advance(JOB_LEASE_TTL_S + 1)
        await heartbeat(store, bot)
        await store.expire_leases()
        job = await store.get_job(job_id)
        assert job is not None and job.attempt == expected
    assert job.state == "failed" and job.error == "lease expired"
    attempts = await store.list_attempts(job_id)
    assert [a.attempt for a in attempts] == [1, 2, 3]


async def test_retry_a_cancelled_job(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    await store.cancel_job(job_id)
    outcome, job = await store.retry_job(job_id)
    assert outcome == ACCEPTED and job is not None and job.state == "queued"
    assert await claim_ids(store, bot.id) == [job_id]


async def test_retry_of_a_live_or_succeeded_job_conflicts(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    queued = await submit(store, clock)
    assert (await store.retry_job(queued))[0] == CONFLICT
    await claim_ids(store, bot.id)
    assert (await store.retry_job(queued))[0] == CONFLICT
    await store.report(bot.id, [complete(queued)])
    outcome, job = await store.retry_job(queued)
    assert outcome == CONFLICT and job is not None and job.state == "succeeded"
    assert await store.retry_job("job_missing") == (NOT_FOUND, None)


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


async def test_idempotency_key_with_a_nul_character(store: Store, clock: FakeClock) -> None:
    """A key is client text; one with a NUL still finds its first job, on every backend."""
    (first,) = await store.submit_jobs([new_job(clock, idempotency_key="k\x00a")])
    (other,) = await store.submit_jobs([new_job(clock, idempotency_key="k\x00b")])
    (again,) = await store.submit_jobs([new_job(clock, idempotency_key="k\x00a")])
    assert first.created and other.created and other.job.id != first.job.id
    assert again.job.id == first.job.id and not again.created
