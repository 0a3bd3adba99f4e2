"""Long-poll: a waiting claim wakes on a notice, on a delayed job's run_at, or ends empty."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from botfleet.clock import FakeClock, SystemClock
from coordinator.longpoll import LongPoller, Waiters
from coordinator.longpoll.poller import woken
from coordinator.store.base import ClaimOutlook, NewJob
from coordinator.store.sqlite import SQLiteStore
from tests.unit.coordinator.longpoll.support import (
    GENEROUS_S,
    NOW,
    QueueOnly,
    eventually,
    job_record,
    poller_on,
    until_waiting,
)
from tests.unit.store.support import registration


class SubmitDuringOutlook(QueueOnly):
    """A job is submitted (and announced) just after the read saw an empty queue: the
    race between the read and the wait."""

    waiters: Waiters | None = None

    async def claim_outlook(
        self, bot_id: str, operations: Sequence[str], claim_id: str | None = None
    ) -> ClaimOutlook:
        outlook = await super().claim_outlook(bot_id, operations, claim_id)
        if self.waiters is not None:
            self.queued.append(job_record("job_1"))
            self.waiters.jobs_available(["sum"], 1)
        return outlook


class TestWait:
    async def test_an_event_already_set_answers_at_once(self) -> None:
        event = asyncio.Event()
        event.set()
        assert await woken(event, GENEROUS_S)

    async def test_a_set_event_wakes_the_wait(self) -> None:
        event = asyncio.Event()
        asyncio.get_running_loop().call_soon(event.set)
        assert await woken(event, GENEROUS_S)

    async def test_the_timeout_ends_the_wait(self) -> None:
        assert not await woken(asyncio.Event(), 0.001)


class TestManyWaitingClaims:
    """A counted notice wakes only the claims its jobs need."""

    async def test_one_job_answers_one_of_many_waiting_claims(self) -> None:
        store = QueueOnly(FakeClock(NOW))
        waiters = Waiters()
        poller = poller_on(store, waiters)
        claims = [
            asyncio.create_task(poller.claim(f"bot{i}", ["sum"], 5, 60, GENEROUS_S))
            for i in range(5)
        ]
        await until_waiting(waiters, 5)
        await eventually(lambda: store.reads + store.outlooks >= 5)
        store.queued.append(job_record("job_1"))
        waiters.jobs_available(["sum"], 1)
        done, pending = await asyncio.wait(claims, return_when=asyncio.FIRST_COMPLETED)
        assert [[j.id for j in task.result() or []] for task in done] == [["job_1"]]
        # The first claims, found nothing; the other four only read; then one woken claim.
        assert store.claims == 1 + 1 and store.outlooks == 4
        waiters.close()
        assert [await task for task in pending] == [[]] * 4


class TestClaim:
    async def test_answers_at_once_when_work_is_there(self) -> None:
        store = QueueOnly(FakeClock(NOW))
        store.queued.append(job_record("job_1"))
        jobs = await poller_on(store, Waiters()).claim("bot", ["sum"], 5, 60, wait_s=GENEROUS_S)
        assert [j.id for j in jobs or []] == ["job_1"]

    async def test_woken_by_a_submit(self) -> None:
        store = QueueOnly(FakeClock(NOW))
        waiters = Waiters()
        waiters.bind(asyncio.get_running_loop())
        claim = asyncio.create_task(
            poller_on(store, waiters).claim("bot", ["sum"], 5, 60, wait_s=GENEROUS_S)
        )
        await until_waiting(waiters)
        store.queued.append(job_record("job_1"))
        waiters.jobs_available(["sum"])
        jobs = await claim
        assert [j.id for j in jobs or []] == ["job_1"]

    async def test_a_submit_for_another_operation_does_not_answer(self) -> None:
        store = QueueOnly(FakeClock(NOW))
        waiters = Waiters()
        claim = asyncio.create_task(
            poller_on(store, waiters).claim("bot", ["sum"], 5, 60, wait_s=GENEROUS_S)
        )
        await until_waiting(waiters)
        claims_before = store.claims
        waiters.jobs_available(["resize"])
        await asyncio.sleep(0)
        assert not claim.done() and store.claims == claims_before
        waiters.close()
        assert await claim == []

    async def test_wakes_when_a_delayed_job_falls_due(self) -> None:
        # No notice at all, and re-checks only every 30 s: only run_at can wake it in time.
        store = QueueOnly(SystemClock())
        store.queued.append(job_record("later", run_at=datetime.now(UTC) + timedelta(seconds=0.05)))
        jobs = await poller_on(store, Waiters()).claim("bot", ["sum"], 5, 60, wait_s=GENEROUS_S)
        assert [j.id for j in jobs or []] == ["later"]

    async def test_ends_empty_when_the_wait_is_over(self) -> None:
        store = QueueOnly(FakeClock(NOW))
        assert await poller_on(store, Waiters()).claim("bot", ["sum"], 5, 60, wait_s=0.01) == []

    async def test_periodic_recheck_catches_a_missed_notice(self) -> None:
        store = QueueOnly(FakeClock(NOW))
        waiters = Waiters()
        claim = asyncio.create_task(
            poller_on(store, waiters, recheck_s=0.01).claim("bot", ["sum"], 5, 60, GENEROUS_S)
        )
        await until_waiting(waiters)
        store.queued.append(job_record("job_1"))  # no notice
        jobs = await claim
        assert [j.id for j in jobs or []] == ["job_1"]

    async def test_a_recheck_with_nothing_due_reads_but_does_not_claim(self) -> None:
        store = QueueOnly(FakeClock(NOW))
        store.queued.append(job_record("later", run_at=NOW + timedelta(hours=1)))
        waiters = Waiters()
        claim = asyncio.create_task(
            poller_on(store, waiters, recheck_s=0.01).claim("bot", ["sum"], 5, 60, GENEROUS_S)
        )
        await eventually(lambda: store.reads >= 5)
        assert store.claims == 1 and not claim.done()
        waiters.close()
        assert await claim == []

    async def test_a_recheck_claims_once_when_due_but_not_handed_out(self) -> None:
        # A due job the claim does not get (the bot at its cap): no claim loop, a
        # claim per re-check at most.
        store = QueueOnly(FakeClock(NOW))
        store.queued.append(job_record("job_1"))
        limit_zero = poller_on(store, Waiters(), recheck_s=0.01)
        claim = asyncio.create_task(limit_zero.claim("bot", ["sum"], 0, 60, GENEROUS_S))
        await eventually(lambda: store.reads >= 6)
        assert store.claims <= store.reads and not claim.done()
        claim.cancel()
        with pytest.raises(asyncio.CancelledError):
            await claim

    async def test_a_bots_freed_capacity_claims_only_when_a_job_is_due(self) -> None:
        store = QueueOnly(FakeClock(NOW))
        waiters = Waiters()
        claim = asyncio.create_task(
            poller_on(store, waiters).claim("bot", ["sum"], 5, 60, GENEROUS_S)
        )
        await eventually(lambda: store.reads == 1)
        waiters.bot_capacity_changed("bot")  # a report, with nothing queued
        await eventually(lambda: store.reads == 2)
        assert store.claims == 1 and not claim.done()
        store.queued.append(job_record("job_1"))  # queued while the bot was at its cap
        waiters.bot_capacity_changed("bot")
        jobs = await claim
        assert [j.id for j in jobs or []] == ["job_1"] and store.claims == 2

    async def test_unknown_bot(self) -> None:
        store = QueueOnly(FakeClock(NOW))
        store.known_bot = False
        assert await poller_on(store, Waiters()).claim("bot", ["sum"], 5, 60, GENEROUS_S) is None

    async def test_gives_nothing_to_a_client_that_left(self) -> None:
        store = QueueOnly(FakeClock(NOW))
        waiters = Waiters()
        claim = asyncio.create_task(
            poller_on(store, waiters).claim(
                "bot", ["sum"], 5, 60, GENEROUS_S, still_wanted=lambda: False
            )
        )
        await until_waiting(waiters)
        store.queued.append(job_record("job_1"))
        waiters.jobs_available(["sum"])
        assert await claim == []
        assert [j.id for j in store.queued] == ["job_1"]

    async def test_observer_sees_each_store_claim(self) -> None:
        store = QueueOnly(FakeClock(NOW))
        store.queued.append(job_record("job_1"))
        seen: list[tuple[float, list[str]]] = []
        poller = LongPoller(
            store,  # type: ignore[arg-type]
            store.clock,
            Waiters(),
            1.0,
            lambda duration, jobs: seen.append((duration, [j.id for j in jobs])),
        )
        await poller.claim("bot", ["sum"], 5, 60, 0)
        assert len(seen) == 1 and seen[0][1] == ["job_1"] and seen[0][0] >= 0


async def _drain(poller: LongPoller, store: QueueOnly) -> None:
    """A claim that comes back short (nothing queued): the hint now says "drained"."""
    assert await poller.claim("bot", ["sum"], 2, 60, 0) == []
    assert store.claims == 1


class TestLookBeforeClaiming:
    """After a claim came back short, the next claim reads before it claims; a claim
    that filled its limit, or a notice of jobs, makes claims go straight to the store."""

    async def test_skips_the_claim_transaction_when_nothing_is_due(self) -> None:
        store = QueueOnly(FakeClock(NOW))
        store.queued.append(job_record("later", run_at=NOW + timedelta(hours=1)))
        poller = poller_on(store, Waiters())
        await _drain(poller, store)
        assert await poller.claim("bot", ["sum"], 2, 60, 0) == []
        assert (store.claims, store.outlooks) == (1, 1)

    async def test_a_long_poll_skips_it_too_and_waits_without_another_read(self) -> None:
        store = QueueOnly(FakeClock(NOW))
        waiters = Waiters()
        poller = poller_on(store, waiters)
        await _drain(poller, store)
        claim = asyncio.create_task(poller.claim("bot", ["sum"], 2, 60, GENEROUS_S))
        await until_waiting(waiters)
        assert (store.claims, store.outlooks, store.reads) == (1, 1, 0)
        store.queued.append(job_record("job_1"))
        waiters.jobs_available(["sum"], 1)
        assert [j.id for j in await claim or []] == ["job_1"]
        assert store.claims == 2

    @pytest.mark.parametrize("wait_s", [0.0, GENEROUS_S])
    async def test_an_unknown_or_offline_bot_still_gets_none(self, wait_s: float) -> None:
        store = QueueOnly(FakeClock(NOW))
        waiters = Waiters()
        poller = poller_on(store, waiters)
        await _drain(poller, store)
        store.known_bot = False
        assert await poller.claim("bot", ["sum"], 2, 60, wait_s) is None
        assert (store.claims, store.outlooks) == (1, 1) and waiters.waiting() == 0

    @pytest.mark.parametrize("wait_s", [0.0, GENEROUS_S])
    async def test_claims_when_the_read_finds_a_job_due(self, wait_s: float) -> None:
        # The hint is wrong (a notice was missed): the read, not the hint, decides.
        store = QueueOnly(FakeClock(NOW))
        poller = poller_on(store, Waiters())
        await _drain(poller, store)
        store.queued.append(job_record("job_1"))  # no notice
        jobs = await poller.claim("bot", ["sum"], 2, 60, wait_s)
        assert [j.id for j in jobs or []] == ["job_1"]
        assert (store.claims, store.outlooks) == (2, 1)

    async def test_a_job_submitted_between_the_read_and_the_wait_is_claimed(self) -> None:
        store = SubmitDuringOutlook(FakeClock(NOW))
        waiters = Waiters()
        # Re-checks only every hour: only the notice can answer in time.
        poller = poller_on(store, waiters, recheck_s=3600)
        await _drain(poller, store)
        store.waiters = waiters
        async with asyncio.timeout(GENEROUS_S):
            jobs = await poller.claim("bot", ["sum"], 2, 60, wait_s=3600)
        assert [j.id for j in jobs or []] == ["job_1"]
        assert (store.claims, store.outlooks, store.reads) == (2, 1, 0)

    async def test_the_busy_path_claims_directly(self) -> None:
        # Claims that fill their limit: no read before any of them.
        store = QueueOnly(FakeClock(NOW))
        store.queued.extend(job_record(f"job_{n}") for n in range(8))
        poller = poller_on(store, Waiters())
        for wait_s in (0.0, GENEROUS_S, 0.0, GENEROUS_S):
            assert len(await poller.claim("bot", ["sum"], 2, 60, wait_s) or []) == 2
        assert (store.claims, store.outlooks, store.reads) == (4, 0, 0)

    async def test_a_full_claim_or_a_notice_of_jobs_makes_claims_direct_again(self) -> None:
        store = QueueOnly(FakeClock(NOW))
        waiters = Waiters()
        poller = poller_on(store, waiters)
        await _drain(poller, store)
        waiters.jobs_available(["sum"], 1)  # say, submitted through this process
        store.queued.append(job_record("job_1"))
        assert len(await poller.claim("bot", ["sum"], 1, 60, 0) or []) == 1  # full
        assert await poller.claim("bot", ["sum"], 1, 60, 0) == []  # direct, and short
        assert (store.claims, store.outlooks) == (3, 0)
        assert await poller.claim("bot", ["sum"], 1, 60, 0) == []
        assert (store.claims, store.outlooks) == (3, 1)


class TestOnASQLiteStore:
    """The same on the real default store: a skipped claim runs no write transaction."""

    async def test_a_short_claim_then_reads_only(self, tmp_path: Path) -> None:
        clock = FakeClock(NOW)
        store = SQLiteStore(str(tmp_path / "botfleet.db"), clock, lambda attempt: 1.0)
        await store.open()
        try:
            bot = (await store.register_bot(registration(clock))).bot
            waiters = Waiters()
            store.set_listener(waiters)
            poller = LongPoller(store, clock, waiters, GENEROUS_S)
            assert await poller.claim(bot.id, ["sum"], 2, 60, 0) == []  # a transaction
            writes = store.write_paths.inline + store.write_paths.thread
            assert await poller.claim(bot.id, ["sum"], 2, 60, 0) == []
            assert await poller.claim("bot_unknown", ["sum"], 2, 60, 0) is None
            assert store.write_paths.inline + store.write_paths.thread == writes
            # A submit through this store announces the job: the next claim goes straight
            # to the store and gets it.
            (outcome,) = await store.submit_jobs([NewJob("sum", {}, run_at=clock.now())])
            jobs = await poller.claim(bot.id, ["sum"], 2, 60, GENEROUS_S)
            assert [j.id for j in jobs or []] == [outcome.job.id]
        finally:
            await store.close()


class TestJobWait:
    async def test_returns_once_terminal(self) -> None:
        store = QueueOnly(FakeClock(NOW))
        store.jobs["job_1"] = job_record("job_1", "running")
        waiters = Waiters()
        read = asyncio.create_task(poller_on(store, waiters).job("job_1", GENEROUS_S))
        await until_waiting(waiters)
        store.jobs["job_1"] = job_record("job_1", "succeeded")
        waiters.job_finished("job_1")
        job = await read
        assert job is not None and job.state == "succeeded"

    async def test_unknown_and_not_waiting(self) -> None:
        store = QueueOnly(FakeClock(NOW))
        store.jobs["job_1"] = job_record("job_1", "running")
        poller = poller_on(store, Waiters())
        assert await poller.job("nope", GENEROUS_S) is None
        job = await poller.job("job_1", 0)
        assert job is not None and job.state == "running"


@pytest.mark.parametrize("wait_s", [0.0, -1.0])
async def test_no_wait_claims_once(wait_s: float) -> None:
    store = QueueOnly(FakeClock(NOW))
    assert await poller_on(store, Waiters()).claim("bot", ["sum"], 5, 60, wait_s) == []
    assert store.claims == 1
