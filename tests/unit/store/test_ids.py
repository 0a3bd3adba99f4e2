"""Job ids: opaque strings to clients, time-ordered inside (`coordinator/store/ids.py`),
on every backend: jobs submitted later have larger ids, and no two are the same."""

from __future__ import annotations

import re

from botfleet.clock import FakeClock
from coordinator.store.base import Store
from coordinator.store.ids import new_job_id
from tests.unit.store.support import new_job, submit

ID = re.compile(r"job_[0-9a-f]{28}")


def test_an_id_is_the_millisecond_then_random_bits(clock: FakeClock) -> None:
    first, second = new_job_id(clock.now()), new_job_id(clock.now())
    assert ID.fullmatch(first) and ID.fullmatch(second)
    assert first[:16] == second[:16] and first != second  # same millisecond, other bits
    clock.advance(0.001)
    assert new_job_id(clock.now())[:16] > first[:16]


async def test_later_jobs_have_larger_ids(store: Store, clock: FakeClock) -> None:
    ids = []
    for _ in range(5):
        ids.append(await submit(store, clock))
        clock.advance(0.002)
    assert all(ID.fullmatch(job_id) for job_id in ids)
    assert ids == sorted(ids)


async def test_a_bulk_submit_gets_distinct_ids(store: Store, clock: FakeClock) -> None:
    outcomes = await store.submit_jobs([new_job(clock) for _ in range(500)])
    ids = [outcome.job.id for outcome in outcomes]
    assert len(set(ids)) == 500
    assert {job_id[:16] for job_id in ids} == {ids[0][:16]}  # one transaction, one moment
