"""Long-poll: a waiting claim wakes on a notice, on a delayed job's run_at, or ends empty."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from botfleet.clock import FakeClock, SystemClock
from coordinator.longpoll import LongPoller, Waiters, _wait
from coordinator.store.base import ClaimInput, ClaimOutlook, JobRecord, NewJob
from coordinator.store.sqlite import SQLiteStore
from tests.support.processes import wait_until_async
from tests.unit.store.support import registration

NOW = datetime(2026, 1, 19, 10, 0, tzinfo=UTC)
GENEROUS_S = 30.0


async def _eventually(predicate: Callable[[], bool]) -> None:
    async def check() -> bool:
        return predicate()

    await wait_until_async(check, GENEROUS_S, "the condition")


def _job(job_id: str, state: str = "queued", run_at: datetime = NOW) -> JobRecord:
    return JobRecord(
        id=job_id,
        op="sum",
        payload={},
        state=state,
        priority=0,
        attempt=1,
        max_attempts=3,
        created_at=NOW,
        run_at=run_at,
    )


class QueueOnly:
    """The store verbs the poller uses: a list of queued jobs, each due at its run_at."""

    def __init__(self, clock: FakeClock | SystemClock) -> None:
        self.clock = clock
        self.queued: list[JobRecord] = []
        self.jobs: dict[str, JobRecord] = {}
        self.claims = 0
        self.reads = 0
        self.outlooks = 0
        self.known_bot = True

    async def claim_jobs(self, claim: ClaimInput) -> list[JobRecord] | None:
        self.claims += 1
        if not self.known_bot:
            return None
        now = self.clock.now()
        due = [j for j in self.queued if j.op in claim.operations and j.run_at <= now]
        due = due[: claim.limit]
        for job in due:
            self.queued.remove(job)
        return due

    async def next_run_at(self, operations: Sequence[str]) -> datetime | None:
        self.reads += 1
        return self._next_run_at(operations)

    async def claim_outlook(self, bot_id: str, operations: Sequence[str]) -> ClaimOutlook:
        self.outlooks += 1
        return ClaimOutlook(bot_online=self.known_bot, next_run_at=self._next_run_at(operations))

    def _next_run_at(self, operations: Sequence[str]) -> datetime | None:
        times = [j.run_at for j in self.queued if j.op in operations]
        return min(times) if times else None

    async def get_job(self, job_id: str) -> JobRecord | None:
        return self.jobs.get(job_id)


class SubmitDuringOutlook(QueueOnly):
    """A job is submitted (and announced) just after the read saw an empty queue: the
    race between the read and the wait."""

    waiters: Waiters | None = None

    async def claim_outlook(self, bot_id: str, operations: Sequence[str]) -> ClaimOutlook:
        outlook = await super().claim_outlook(bot_id, operations)
        if self.waiters is not None:
            self.queued.append(_job("job_1"))
            self.waiters.jobs_available(["sum"], 1)
        return outlook


def _poller(store: QueueOnly, waiters: Waiters, recheck_s: float = GENEROUS_S) -> LongPoller:
    return LongPoller(store, store.clock, waiters, recheck_s)  # type: ignore[arg-type]


async def _until_waiting(waiters: Waiters, count: int = 1) -> None:
    await _eventually(lambda: waiters.waiting() >= count)


class TestWaiters:
    async def test_wakes_only_matching_operations(self) -> None:
        waiters = Waiters()
        with waiters.watch_operations(["sum"]) as sums, waiters.watch_operations(["x"]) as xs:
            waiters.jobs_available(["sum", "other"])
            assert sums.event.is_set() and not xs.event.is_set()
        assert waiters.waiting() == 0

    async def test_job_finished_wakes_that_job(self) -> None:
        waiters = Waiters()
        with waiters.watch_job("job_1") as one, waiters.watch_job("job_2") as two:
            waiters.job_finished("job_1")
            assert one.is_set() and not two.is_set()

    async def test_a_notice_from_another_thread_wakes_the_loop(self) -> None:
        waiters = Waiters()
        waiters.bind(asyncio.get_running_loop())
        with waiters.watch_operations(["sum"]) as wake:
            thread = threading.Thread(target=waiters.jobs_available, args=(["sum"],))
            thread.start()
            thread.join()
            async with asyncio.timeout(GENEROUS_S):
                await wake.event.wait()

    async def test_close_wakes_everyone_and_later_waits(self) -> None:
        waiters = Waiters()
        with waiters.watch_operations(["sum"]) as before:
            waiters.close()
            assert before.event.is_set()
        with waiters.watch_job("j") as after:
            assert after.is_set()

    async def test_a_claim_watch_leaves_its_bot_and_operations(self) -> None:
        waiters = Waiters()
        with waiters.watch_operations(["sum", "x"], bot_id="bot_1") as watch:
            waiters.bot_capacity_changed("bot_1")
            assert watch.event.is_set() and not watch.jobs_announced
            assert waiters.waiting() == 1
        assert waiters.waiting() == 0
        waiters.bot_capacity_changed("bot_1")  # nobody left to wake: no error


class TestWait:
    async def test_an_event_already_set_answers_at_once(self) -> None:
        event = asyncio.Event()
        event.set()
        assert await _wait(event, GENEROUS_S)

    async def test_a_set_event_wakes_the_wait(self) -> None:
        event = asyncio.Event()
        asyncio.get_running_loop().call_soon(event.set)
        assert await _wait(event, GENEROUS_S)

    async def test_the_timeout_ends_the_wait(self) -> None:
        assert not await _wait(asyncio.Event(), 0.001)


class TestCountedWake:
    """A notice that says how many jobs came wakes only the claims those jobs need."""

    async def test_wakes_the_longest_waiting_claims_until_their_limits_cover_the_jobs(
        self,
    ) -> None:
        waiters = Waiters()
        with (
            waiters.watch_operations(["sum"], limit=2) as first,
            waiters.watch_operations(["sum"], limit=2) as second,
            waiters.watch_operations(["sum"], limit=2) as third,
        ):
            waiters.jobs_available(["sum"], 3)
            assert [w.event.is_set() for w in (first, second, third)] == [True, True, False]

    async def test_an_unknown_count_wakes_everyone(self) -> None:
        waiters = Waiters()
        with (
            waiters.watch_operations(["sum"]) as first,
            waiters.watch_operations(["sum"]) as second,
        ):
            waiters.jobs_available(["sum"], None)
            assert first.event.is_set() and second.event.is_set()

    async def test_a_woken_claim_that_got_nothing_passes_the_wake_on_while_a_job_is_due(
        self,
    ) -> None:
        waiters = Waiters()
        with (
            waiters.watch_operations(["sum"]) as first,
            waiters.watch_operations(["sum"]) as second,
            waiters.watch_operations(["sum"]) as third,
        ):
            waiters.jobs_available(["sum"], 1)
            assert not second.event.is_set()
            waiters.begin_claim(first)
            waiters.settle(first, claimed=0, jobs_left=True)  # at its cap, say
            assert second.event.is_set() and not third.event.is_set()
            waiters.begin_claim(second)
            waiters.settle(second, claimed=0, jobs_left=False)  # taken by someone else
            assert not third.event.is_set() and not first.event.is_set()

    async def test_each_claim_is_tried_once_per_notice(self) -> None:
        waiters = Waiters()
        with (
            waiters.watch_operations(["sum"]) as first,
            waiters.watch_operations(["sum"]) as second,
        ):
            waiters.jobs_available(["sum"], 1)
            for watch in (first, second):
                assert watch.event.is_set()
                waiters.begin_claim(watch)
                waiters.settle(watch, claimed=0, jobs_left=True)
            assert not first.event.is_set() and not second.event.is_set()

    async def test_fewer_jobs_than_expected_wakes_more(self) -> None:
        waiters = Waiters()
        with (
            waiters.watch_operations(["sum"], limit=5) as first,
            waiters.watch_operations(["sum"], limit=5) as second,
        ):
            waiters.jobs_available(["sum"], 4)
            assert not second.event.is_set()
            waiters.begin_claim(first)
            waiters.settle(first, claimed=1, jobs_left=True)  # it had one slot free
            assert second.event.is_set()

    async def test_a_woken_claim_that_leaves_passes_the_wake_on(self) -> None:
        waiters = Waiters()
        leaving = waiters.watch_operations(["sum"])
        first = leaving.__enter__()
        with waiters.watch_operations(["sum"]) as second:
            waiters.jobs_available(["sum"], 1)
            assert first.event.is_set() and not second.event.is_set()
            leaving.__exit__(None, None, None)  # the client went away before claiming
            assert second.event.is_set()

    async def test_one_job_answers_one_of_many_waiting_claims(self) -> None:
        store = QueueOnly(FakeClock(NOW))
        waiters = Waiters()
        poller = _poller(store, waiters)
        claims = [
            asyncio.create_task(poller.claim(f"bot{i}", ["sum"], 5, 60, GENEROUS_S))
            for i in range(5)
        ]
        await _until_waiting(waiters, 5)
        await _eventually(lambda: store.reads + store.outlooks >= 5)
        store.queued.append(_job("job_1"))
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
        store.queued.append(_job("job_1"))
        jobs = await _poller(store, Waiters()).claim("bot", ["sum"], 5, 60, wait_s=GENEROUS_S)
        assert [j.id for j in jobs or []] == ["job_1"]

    async def test_woken_by_a_submit(self) -> None:
        store = QueueOnly(FakeClock(NOW))
        waiters = Waiters()
        waiters.bind(asyncio.get_running_loop())
        claim = asyncio.create_task(
            _poller(store, waiters).claim("bot", ["sum"], 5, 60, wait_s=GENEROUS_S)
        )
        await _until_waiting(waiters)
        store.queued.append(_job("job_1"))
        waiters.jobs_available(["sum"])
        jobs = await claim
        assert [j.id for j in jobs or []] == ["job_1"]

    async def test_a_submit_for_another_operation_does_not_answer(self) -> None:
        store = QueueOnly(FakeClock(NOW))
        waiters = Waiters()
        claim = asyncio.create_task(
            _poller(store, waiters).claim("bot", ["sum"], 5, 60, wait_s=GENEROUS_S)
        )
        await _until_waiting(waiters)
        claims_before = store.claims
        waiters.jobs_available(["resize"])
        await asyncio.sleep(0)
        assert not claim.done() and store.claims == claims_before
        waiters.close()
        assert await claim == []

    async def test_wakes_when_a_delayed_job_falls_due(self) -> None:
        # No notice at all, and re-checks only every 30 s: only run_at can wake it in time.
        store = QueueOnly(SystemClock())
        store.queued.append(_job("later", run_at=datetime.now(UTC) + timedelta(seconds=0.05)))
        jobs = await _poller(store, Waiters()).claim("bot", ["sum"], 5, 60, wait_s=GENEROUS_S)
        assert [j.id for j in jobs or []] == ["later"]

    async def test_ends_empty_when_the_wait_is_over(self) -> None:
        store = QueueOnly(FakeClock(NOW))
        assert await _poller(store, Waiters()).claim("bot", ["sum"], 5, 60, wait_s=0.01) == []

    async def test_periodic_recheck_catches_a_missed_notice(self) -> None:
        store = QueueOnly(FakeClock(NOW))
        waiters = Waiters()
        claim = asyncio.create_task(
            _poller(store, waiters, recheck_s=0.01).claim("bot", ["sum"], 5, 60, GENEROUS_S)
        )
        await _until_waiting(waiters)
        store.queued.append(_job("job_1"))  # no notice
        jobs = await claim
        assert [j.id for j in jobs or []] == ["job_1"]

    async def test_a_recheck_with_nothing_due_reads_but_does_not_claim(self) -> None:
        store = QueueOnly(FakeClock(NOW))
        store.queued.append(_job("later", run_at=NOW + timedelta(hours=1)))
        waiters = Waiters()
        claim = asyncio.create_task(
            _poller(store, waiters, recheck_s=0.01).claim("bot", ["sum"], 5, 60, GENEROUS_S)
        )
        await _eventually(lambda: store.reads >= 5)
        assert store.claims == 1 and not claim.done()
        waiters.close()
        assert await claim == []

    async def test_a_recheck_claims_once_when_due_but_not_handed_out(self) -> None:
        # A due job the claim does not get (the bot at its cap): no claim loop, a
        # claim per re-check at most.
        store = QueueOnly(FakeClock(NOW))
        store.queued.append(_job("job_1"))
        limit_zero = _poller(store, Waiters(), recheck_s=0.01)
        claim = asyncio.create_task(limit_zero.claim("bot", ["sum"], 0, 60, GENEROUS_S))
        await _eventually(lambda: store.reads >= 6)
        assert store.claims <= store.reads and not claim.done()
        claim.cancel()
        with pytest.raises(asyncio.CancelledError):
            await claim

    async def test_a_bots_freed_capacity_claims_only_when_a_job_is_due(self) -> None:
        store = QueueOnly(FakeClock(NOW))
        waiters = Waiters()
        claim = asyncio.create_task(
            _poller(store, waiters).claim("bot", ["sum"], 5, 60, GENEROUS_S)
        )
        await _eventually(lambda: store.reads == 1)
        waiters.bot_capacity_changed("bot")  # a report, with nothing queued
        await _eventually(lambda: store.reads == 2)
        assert store.claims == 1 and not claim.done()
        store.queued.append(_job("job_1"))  # queued while the bot was at its cap
        waiters.bot_capacity_changed("bot")
        jobs = await claim
        assert [j.id for j in jobs or []] == ["job_1"] and store.claims == 2

    async def test_unknown_bot(self) -> None:
        store = QueueOnly(FakeClock(NOW))
        store.known_bot = False
        assert await _poller(store, Waiters()).claim("bot", ["sum"], 5, 60, GENEROUS_S) is None

    async def test_gives_nothing_to_a_client_that_left(self) -> None:
        store = QueueOnly(FakeClock(NOW))
        waiters = Waiters()
        claim = asyncio.create_task(
            _poller(store, waiters).claim(
                "bot", ["sum"], 5, 60, GENEROUS_S, still_wanted=lambda: False
            )
        )
        await _until_waiting(waiters)
        store.queued.append(_job("job_1"))
        waiters.jobs_available(["sum"])
        assert await claim == []
        assert [j.id for j in store.queued] == ["job_1"]

    async def test_observer_sees_each_store_claim(self) -> None:
        store = QueueOnly(FakeClock(NOW))
        store.queued.append(_job("job_1"))
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
        store.queued.append(_job("later", run_at=NOW + timedelta(hours=1)))
        poller = _poller(store, Waiters())
        await _drain(poller, store)
        assert await poller.claim("bot", ["sum"], 2, 60, 0) == []
        assert (store.claims, store.outlooks) == (1, 1)

    async def test_a_long_poll_skips_it_too_and_waits_without_another_read(self) -> None:
        store = QueueOnly(FakeClock(NOW))
        waiters = Waiters()
        poller = _poller(store, waiters)
        await _drain(poller, store)
        claim = asyncio.create_task(poller.claim("bot", ["sum"], 2, 60, GENEROUS_S))
        await _until_waiting(waiters)
        assert (store.claims, store.outlooks, store.reads) == (1, 1, 0)
        store.queued.append(_job("job_1"))
        waiters.jobs_available(["sum"], 1)
        assert [j.id for j in await claim or []] == ["job_1"]
        assert store.claims == 2

    @pytest.mark.parametrize("wait_s", [0.0, GENEROUS_S])
    async def test_an_unknown_or_offline_bot_still_gets_none(self, wait_s: float) -> None:
        store = QueueOnly(FakeClock(NOW))
        waiters = Waiters()
        poller = _poller(store, waiters)
        await _drain(poller, store)
        store.known_bot = False
        assert await poller.claim("bot", ["sum"], 2, 60, wait_s) is None
        assert (store.claims, store.outlooks) == (1, 1) and waiters.waiting() == 0

    @pytest.mark.parametrize("wait_s", [0.0, GENEROUS_S])
    async def test_claims_when_the_read_finds_a_job_due(self, wait_s: float) -> None:
        # The hint is wrong (a notice was missed): the read, not the hint, decides.
        store = QueueOnly(FakeClock(NOW))
        poller = _poller(store, Waiters())
        await _drain(poller, store)
        store.queued.append(_job("job_1"))  # no notice
        jobs = await poller.claim("bot", ["sum"], 2, 60, wait_s)
        assert [j.id for j in jobs or []] == ["job_1"]
        assert (store.claims, store.outlooks) == (2, 1)

    async def test_a_job_submitted_between_the_read_and_the_wait_is_claimed(self) -> None:
        store = SubmitDuringOutlook(FakeClock(NOW))
        waiters = Waiters()
        # Re-checks only every hour: only the notice can answer in time.
        poller = _poller(store, waiters, recheck_s=3600)
        await _drain(poller, store)
        store.waiters = waiters
        async with asyncio.timeout(GENEROUS_S):
            jobs = await poller.claim("bot", ["sum"], 2, 60, wait_s=3600)
        assert [j.id for j in jobs or []] == ["job_1"]
        assert (store.claims, store.outlooks, store.reads) == (2, 1, 0)

    async def test_the_busy_path_claims_directly(self) -> None:
        # Claims that fill their limit: no read before any of them.
        store = QueueOnly(FakeClock(NOW))
        store.queued.extend(_job(f"job_{n}") for n in range(8))
        poller = _poller(store, Waiters())
        for wait_s in (0.0, GENEROUS_S, 0.0, GENEROUS_S):
            assert len(await poller.claim("bot", ["sum"], 2, 60, wait_s) or []) == 2
        assert (store.claims, store.outlooks, store.reads) == (4, 0, 0)

    async def test_a_full_claim_or_a_notice_of_jobs_makes_claims_direct_again(self) -> None:
        store = QueueOnly(FakeClock(NOW))
        waiters = Waiters()
        poller = _poller(store, waiters)
        await _drain(poller, store)
        waiters.jobs_available(["sum"], 1)  # say, submitted through this process
        store.queued.append(_job("job_1"))
        assert len(await poller.claim("bot", ["sum"], 1, 60, 0) or []) == 1  # full
        assert await poller.claim("bot", ["sum"], 1, 60, 0) == []  # direct, and short
        assert (store.claims, store.outlooks) == (3, 0)
        assert await poller.claim("bot", ["sum"], 1, 60, 0) == []
        assert (store.claims, store.outlooks) == (3, 1)


class TestClaimHint:
    def test_drained_only_when_every_operation_came_back_short(self) -> None:
        waiters = Waiters()
        assert waiters.jobs_likely(["sum"])
        waiters.note_claim(["sum"], limit=2, claimed=1, notices_before=waiters.job_notices)
        assert not waiters.jobs_likely(["sum"])
        assert waiters.jobs_likely(["sum", "resize"]) and waiters.jobs_likely(["resize"])

    def test_a_notice_during_a_short_claim_keeps_jobs_likely(self) -> None:
        waiters = Waiters()
        before = waiters.job_notices
        waiters.jobs_available(["sum"], 1)  # committed while the claim ran
        waiters.note_claim(["sum"], limit=2, claimed=0, notices_before=before)
        assert waiters.jobs_likely(["sum"])

    def test_a_notice_for_other_operations_leaves_the_hint(self) -> None:
        waiters = Waiters()
        waiters.note_claim(["sum"], limit=2, claimed=0, notices_before=waiters.job_notices)
        waiters.jobs_available(["resize"], 3)
        assert not waiters.jobs_likely(["sum"])
        waiters.jobs_available(["sum", "resize"], None)
        assert waiters.jobs_likely(["sum"])

    def test_a_claim_with_no_room_to_fill_says_nothing(self) -> None:
        waiters = Waiters()
        waiters.note_claim(["sum"], limit=0, claimed=0, notices_before=waiters.job_notices)
        assert waiters.jobs_likely(["sum"])

    async def test_jobs_the_woken_claims_cover_leave_the_hint(self) -> None:
        # One job for one waiting claim (a producer one job at a time): that claim takes
        # it, so a claim arriving meanwhile reads first.
        waiters = Waiters()
        waiters.note_claim(["sum"], limit=2, claimed=1, notices_before=waiters.job_notices)
        with waiters.watch_operations(["sum"], limit=2) as watch:
            waiters.jobs_available(["sum"], 1)
            assert watch.event.is_set() and not waiters.jobs_likely(["sum"])
            waiters.jobs_available(["sum"], 5)  # more than the waiting claims can take
            assert waiters.jobs_likely(["sum"])

    async def test_jobs_a_woken_claim_could_not_take_make_jobs_likely(self) -> None:
        waiters = Waiters()
        waiters.note_claim(["sum"], limit=1, claimed=0, notices_before=waiters.job_notices)
        with waiters.watch_operations(["sum"], limit=1) as watch:
            waiters.jobs_available(["sum"], 1)
            assert not waiters.jobs_likely(["sum"])
            waiters.begin_claim(watch)
            waiters.settle(watch, claimed=0, jobs_left=True)  # at its cap, say
            assert waiters.jobs_likely(["sum"])  # nobody else waits to take it


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
        store.jobs["job_1"] = _job("job_1", "running")
        waiters = Waiters()
        read = asyncio.create_task(_poller(store, waiters).job("job_1", GENEROUS_S))
        await _until_waiting(waiters)
        store.jobs["job_1"] = _job("job_1", "succeeded")
        waiters.job_finished("job_1")
        job = await read
        assert job is not None and job.state == "succeeded"

    async def test_unknown_and_not_waiting(self) -> None:
        store = QueueOnly(FakeClock(NOW))
        store.jobs["job_1"] = _job("job_1", "running")
        poller = _poller(store, Waiters())
        assert await poller.job("nope", GENEROUS_S) is None
        job = await poller.job("job_1", 0)
        assert job is not None and job.state == "running"


@pytest.mark.parametrize("wait_s", [0.0, -1.0])
async def test_no_wait_claims_once(wait_s: float) -> None:
    store = QueueOnly(FakeClock(NOW))
    assert await _poller(store, Waiters()).claim("bot", ["sum"], 5, 60, wait_s) == []
    assert store.claims == 1
