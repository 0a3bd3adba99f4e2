"""Jobs that wait for other jobs (submit's `after`), on every backend, with the fake clock."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from botfleet.clock import FakeClock
from coordinator.store.base import JobRecord, Retention, Store
from coordinator.store.dependencies import UnknownDependency
from tests.support.backends import StoreFactory
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


async def job(store: Store, job_id: str) -> JobRecord:
    record = await store.get_job(job_id)
    assert record is not None
    return record


async def state(store: Store, job_id: str) -> tuple[str, str | None]:
    record = await job(store, job_id)
    return record.state, record.error


async def run(store: Store, bot_id: str, expected: list[str]) -> None:
    """Claim exactly `expected` and complete them."""
    assert sorted(await claim_ids(store, bot_id)) == sorted(expected)
    await store.report(bot_id, [complete(job_id) for job_id in expected])


async def test_a_chain_runs_one_job_after_the_other(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    first = await submit(store, clock)
    second = await submit(store, clock, after=(first,))
    third = await submit(store, clock, after=(second,))
    assert (await job(store, second)).waiting_on == 1
    assert await store.pending_dependencies(third) == [(second, "queued")]

    await run(store, bot.id, [first])
    assert (await job(store, second)).waiting_on == 0
    await run(store, bot.id, [second])
    await run(store, bot.id, [third])
    assert await claim_ids(store, bot.id) == []
    assert await state(store, third) == ("succeeded", None)


async def test_a_diamond_in_one_submit_waits_for_both_branches(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    outcomes = await store.submit_jobs(
        [
            new_job(clock),
            new_job(clock, after=("#0",)),
            new_job(clock, after=("#0",)),
            new_job(clock, after=("#1", "#2")),
        ]
    )
    top, left, right, bottom = (outcome.job.id for outcome in outcomes)
    assert [outcome.job.waiting_on for outcome in outcomes] == [0, 1, 1, 2]

    await run(store, bot.id, [top])
    assert sorted(await claim_ids(store, bot.id)) == sorted([left, right])
    await store.report(bot.id, [complete(left)])
    assert await claim_ids(store, bot.id) == []
    assert await store.pending_dependencies(bottom) == [(right, "running")]
    await store.report(bot.id, [complete(right)])
    await run(store, bot.id, [bottom])


async def test_a_failure_cancels_the_dependants_and_theirs(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    root = await submit(store, clock, max_attempts=1)
    child = await submit(store, clock, after=(root,))
    grandchild = await submit(store, clock, after=(child,))
    bystander = await submit(store, clock)

    assert sorted(await claim_ids(store, bot.id)) == sorted([root, bystander])
    await store.report(bot.id, [fail(root, retryable=False)])

    assert await state(store, child) == ("cancelled", f"dependency {root} failed")
    assert await state(store, grandchild) == ("cancelled", f"dependency {child} cancelled")
    assert (await job(store, grandchild)).finished_at == clock.now()
    assert await claim_ids(store, bot.id) == []
    stats = await store.stats()
    assert stats.jobs_by_state["cancelled"] == 2


async def test_a_retried_failure_does_not_cancel(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    root = await submit(store, clock, max_attempts=2)
    child = await submit(store, clock, after=(root,))
    assert await claim_ids(store, bot.id) == [root]
    await store.report(bot.id, [fail(root, retry_after_ms=0)])
    assert await state(store, child) == ("queued", None)
    await run(store, bot.id, [root])
    await run(store, bot.id, [child])


async def test_cancelling_a_dependency_cancels_its_dependants(
    store: Store, clock: FakeClock, listener: RecordingListener
) -> None:
    root = await submit(store, clock)
    child = await submit(store, clock, after=(root,))
    await store.cancel_job(root)
    assert await state(store, child) == ("cancelled", f"dependency {root} cancelled")
    await listener.until(lambda: child in listener.finished)


async def test_cancelling_a_waiting_job_drops_what_it_waited_for(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    root = await submit(store, clock)
    child = await submit(store, clock, after=(root,))
    grandchild = await submit(store, clock, after=(child,))
    await store.cancel_job(child)
    assert await state(store, grandchild) == ("cancelled", f"dependency {child} cancelled")
    await run(store, bot.id, [root])
    assert (await job(store, child)).state == "cancelled"


async def test_a_lease_that_runs_out_for_good_cancels_the_dependants(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    root = await submit(store, clock, max_attempts=1)
    child = await submit(store, clock, after=(root,))
    assert await claim_ids(store, bot.id) == [root]
    clock.advance(JOB_LEASE_TTL_S + 1)
    outcome = await store.expire_leases()
    assert root in outcome.failed
    assert await state(store, child) == ("cancelled", f"dependency {root} failed")


async def test_an_expired_dependency_cancels_the_dependants(store: Store, clock: FakeClock) -> None:
    root = await submit(store, clock, expires_at=clock.now() + timedelta(seconds=5))
    child = await submit(store, clock, after=(root,))
    clock.advance(6)
    await store.sweep(Retention(finished_s=3600.0, bots_s=3600.0))
    assert await state(store, root) == ("cancelled", "expired")
    assert await state(store, child) == ("cancelled", f"dependency {root} cancelled")


async def test_retrying_a_failed_dependency_leaves_its_dependants_cancelled(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    root = await submit(store, clock, max_attempts=1)
    child = await submit(store, clock, after=(root,))
    assert await claim_ids(store, bot.id) == [root]
    await store.report(bot.id, [fail(root, retryable=False)])
    await store.retry_job(root)
    await run(store, bot.id, [root])
    assert (await job(store, child)).state == "cancelled"
    # A retried dependant runs at once: what it waited for went with its cancellation.
    await store.retry_job(child)
    await run(store, bot.id, [child])


async def test_waiting_for_a_finished_job(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    done = await submit(store, clock)
    failed = await submit(store, clock, max_attempts=1)
    assert sorted(await claim_ids(store, bot.id)) == sorted([done, failed])
    await store.report(bot.id, [complete(done), fail(failed, retryable=False)])

    ready = await submit(store, clock, after=(done,))
    doomed = await submit(store, clock, after=(done, failed))
    assert (await job(store, ready)).waiting_on == 0
    assert await state(store, doomed) == ("cancelled", f"dependency {failed} failed")
    await run(store, bot.id, [ready])


async def test_an_unknown_dependency_refuses_the_whole_submit(
    store: Store, clock: FakeClock
) -> None:
    with pytest.raises(UnknownDependency) as raised:
        await store.submit_jobs([new_job(clock), new_job(clock, after=("job_nope",))])
    assert (raised.value.index, raised.value.job_id) == (1, "job_nope")
    assert (await store.stats()).jobs_by_state.get("queued", 0) == 0


async def test_a_released_dependant_wakes_waiting_claims(
    store: Store, clock: FakeClock, listener: RecordingListener
) -> None:
    bot = await register(store, clock)
    root = await submit(store, clock)
    await submit(store, clock, op="other", after=(root,))
    assert await claim_ids(store, bot.id) == [root]
    assert await store.next_run_at(["other"]) is None
    await store.report(bot.id, [complete(root)])
    await listener.until(lambda: listener.announced("other"))
    assert await store.next_run_at(["other"]) is not None


async def test_a_repeated_complete_releases_once(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    first = await submit(store, clock)
    second = await submit(store, clock)
    both = await submit(store, clock, after=(first, second))
    assert sorted(await claim_ids(store, bot.id)) == sorted([first, second])
    await store.report(bot.id, [complete(first)])
    await store.report(bot.id, [complete(first)])
    assert (await job(store, both)).waiting_on == 1
    assert await claim_ids(store, bot.id) == []
    await store.report(bot.id, [complete(second)])
    await run(store, bot.id, [both])


async def test_two_coordinators_release_a_shared_dependant_once(
    store_factory: StoreFactory, clock: FakeClock
) -> None:
    """Dependencies ending at once in two processes each take their own share off the
    dependant's count; a submit racing them waits only for what is still unfinished."""
    first, second = store_factory(), store_factory()
    await first.open()
    await second.open()
    try:
        bot = await register(first, clock, max_concurrency=50)
        for _ in range(5):
            parents = [await submit(first, clock) for _ in range(4)]
            child = await submit(first, clock, after=tuple(parents))
            assert sorted(await claim_ids(first, bot.id, limit=50)) == sorted(parents)
            racer = asyncio.create_task(second.submit_jobs([new_job(clock, after=(parents[0],))]))
            await asyncio.gather(
                *(
                    (first if i % 2 else second).report(bot.id, [complete(job_id)])
                    for i, job_id in enumerate(parents)
                )
            )
            (late,) = await racer
            assert (await job(first, child)).waiting_on == 0
            assert sorted(await claim_ids(second, bot.id, limit=50)) == sorted([child, late.job.id])
            await first.report(bot.id, [complete(child), complete(late.job.id)])
    finally:
        await first.close()
        await second.close()


async def test_a_job_keeps_what_it_was_submitted_after(store: Store, clock: FakeClock) -> None:
    """The links go as dependencies end; the job's `after` stays, "#N" resolved, in order."""
    bot = await register(store, clock)
    done = await submit(store, clock)
    await run(store, bot.id, [done])
    outcomes = await store.submit_jobs(
        [
            new_job(clock),
            new_job(clock, after=("#0", done)),
            new_job(clock, after=(done,)),  # all it names has succeeded: no wait at all
            new_job(clock),
        ]
    )
    first, second, third, plain = (outcome.job.id for outcome in outcomes)
    assert [outcome.job.after for outcome in outcomes] == [(), (first, done), (done,), ()]
    await run(store, bot.id, [first, third, plain])
    await run(store, bot.id, [second])
    assert await store.pending_dependencies(second) == []
    assert (await job(store, second)).after == (first, done)
    assert (await job(store, third)).after == (done,)
    assert (await job(store, plain)).after == ()
