"""Long-poll: a repeated `claim_id` is answered at once, whatever it may wait."""

from __future__ import annotations

import asyncio

import pytest

from botfleet.clock import FakeClock
from coordinator.longpoll import Waiters
from coordinator.store.base import ClaimInput, HandedBack, JobRecord
from tests.unit.coordinator.longpoll.support import (
    GENEROUS_S,
    NOW,
    QueueOnly,
    job_record,
    poller_on,
)

# Far longer than the test may take: a claim answered at all did not wait.
LONG_WAIT_S = 3600.0


class WithRepeats(QueueOnly):
    """A queue that also knows the claim ids that handed out jobs, and what each still
    holds: a repeat of one of them gets that back, and nothing new."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.held: dict[str, list[JobRecord]] = {}

    async def claim_jobs(self, claim: ClaimInput) -> list[JobRecord] | None:
        if claim.claim_id in self.held:
            self.claims += 1
            return HandedBack(self.held[claim.claim_id])
        return await super().claim_jobs(claim)


@pytest.mark.parametrize("queued", [0, 3], ids=["nothing_queued", "jobs_queued"])
async def test_a_repeat_holding_nothing_answers_at_once_with_nothing(queued: int) -> None:
    store = WithRepeats(FakeClock(NOW))
    store.queued.extend(job_record(f"job_{n}") for n in range(queued))
    store.held["claim-1"] = []
    waiters = Waiters()
    poller = poller_on(store, waiters)
    async with asyncio.timeout(GENEROUS_S):
        jobs = await poller.claim("bot", ["sum"], 2, 60, LONG_WAIT_S, claim_id="claim-1")
    assert jobs == [] and store.claims == 1 and waiters.waiting() == 0
    assert len(store.queued) == queued


async def test_a_repeat_gets_back_what_its_claim_still_holds() -> None:
    store = WithRepeats(FakeClock(NOW))
    store.held["claim-1"] = [job_record("job_1", state="running")]
    jobs = await poller_on(store, Waiters()).claim(
        "bot", ["sum"], 2, 60, LONG_WAIT_S, claim_id="claim-1"
    )
    assert [job.id for job in jobs or []] == ["job_1"]


async def test_a_short_repeat_does_not_mark_the_queue_drained() -> None:
    # Jobs queued, and a repeat that gets back fewer than its limit: the next claim
    # still goes straight to the store, without a read first.
    store = WithRepeats(FakeClock(NOW))
    store.queued.extend(job_record(f"job_{n}") for n in range(3))
    store.held["claim-1"] = []
    poller = poller_on(store, Waiters())
    assert await poller.claim("bot", ["sum"], 2, 60, 0, claim_id="claim-1") == []
    assert len(await poller.claim("bot", ["sum"], 2, 60, 0, claim_id="claim-2") or []) == 2
    assert (store.claims, store.outlooks) == (2, 0)
