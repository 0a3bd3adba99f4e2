"""`report_and_claim`: a claim that carries reports, in one transaction. It must answer
exactly what `report` then `claim_jobs` would, on every backend."""

from __future__ import annotations

from botfleet.clock import FakeClock
from coordinator.store.base import ClaimInput, ReportOutcome, Store
from tests.unit.store.support import (
    JOB_LEASE_TTL_S,
    RecordingListener,
    claim_ids,
    complete,
    fail,
    register,
    submit,
    wait_until,
)

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

    await wait_until(lambda: done in listener.finished and listener.announced("subtract"))
