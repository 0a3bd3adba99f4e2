"""Waiters: notices wake the requests they concern, counted notices only those needed,
and the claim hint follows the notices."""

from __future__ import annotations

import asyncio
import threading

from coordinator.longpoll import Waiters
from tests.unit.coordinator.longpoll.support import GENEROUS_S


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
            assert wake.jobs_announced

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
        watch.event.clear()
        waiters.bot_capacity_changed("bot_1")  # nobody left to wake
        waiters.jobs_available(["sum", "x"])
        assert not watch.event.is_set()


class TestCountedWake:
    """A notice that says how many jobs came wakes only the claims those jobs need."""

    def test_wakes_the_longest_waiting_claims_until_their_limits_cover_the_jobs(self) -> None:
        waiters = Waiters()
        with (
            waiters.watch_operations(["sum"], limit=2) as first,
            waiters.watch_operations(["sum"], limit=2) as second,
            waiters.watch_operations(["sum"], limit=2) as third,
        ):
            waiters.jobs_available(["sum"], 3)
            assert [w.event.is_set() for w in (first, second, third)] == [True, True, False]

    def test_an_unknown_count_wakes_everyone(self) -> None:
        waiters = Waiters()
        with (
            waiters.watch_operations(["sum"]) as first,
            waiters.watch_operations(["sum"]) as second,
        ):
            waiters.jobs_available(["sum"], None)
            assert first.event.is_set() and second.event.is_set()

    def test_a_claim_watching_several_operations_is_woken_once(self) -> None:
        waiters = Waiters()
        with (
            waiters.watch_operations(["sum", "x"]) as both,
            waiters.watch_operations(["x"]) as xs,
        ):
            waiters.jobs_available(["sum", "x"], 2)
            assert both.event.is_set() and xs.event.is_set()

    def test_a_woken_claim_that_got_nothing_passes_the_wake_on_while_a_job_is_due(
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

    def test_each_claim_is_tried_once_per_notice(self) -> None:
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

    def test_fewer_jobs_than_expected_wakes_more(self) -> None:
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

    def test_a_woken_claim_that_leaves_passes_the_wake_on(self) -> None:
        waiters = Waiters()
        leaving = waiters.watch_operations(["sum"])
        first = leaving.__enter__()
        with waiters.watch_operations(["sum"]) as second:
            waiters.jobs_available(["sum"], 1)
            assert first.event.is_set() and not second.event.is_set()
            leaving.__exit__(None, None, None)  # the client went away before claiming
            assert second.event.is_set()


class TestClaimHint:
    """The waiters keep the hint, and notices of jobs no waiting claim takes reset it."""

    def test_drained_only_when_every_operation_came_back_short(self) -> None:
        hint = Waiters().hint
        assert hint.jobs_likely(["sum"])
        hint.note_claim(["sum"], limit=2, claimed=1, notices_before=hint.notices)
        assert not hint.jobs_likely(["sum"])
        assert hint.jobs_likely(["sum", "resize"]) and hint.jobs_likely(["resize"])

    def test_a_notice_during_a_short_claim_keeps_jobs_likely(self) -> None:
        waiters = Waiters()
        before = waiters.hint.notices
        waiters.jobs_available(["sum"], 1)  # committed while the claim ran
        waiters.hint.note_claim(["sum"], limit=2, claimed=0, notices_before=before)
        assert waiters.hint.jobs_likely(["sum"])

    def test_a_notice_for_other_operations_leaves_the_hint(self) -> None:
        waiters = Waiters()
        hint = waiters.hint
        hint.note_claim(["sum"], limit=2, claimed=0, notices_before=hint.notices)
        waiters.jobs_available(["resize"], 3)
        assert not hint.jobs_likely(["sum"])
        waiters.jobs_available(["sum", "resize"], None)
        assert hint.jobs_likely(["sum"])

    def test_a_claim_with_no_room_to_fill_says_nothing(self) -> None:
        hint = Waiters().hint
        hint.note_claim(["sum"], limit=0, claimed=0, notices_before=hint.notices)
        assert hint.jobs_likely(["sum"])

    def test_jobs_the_woken_claims_cover_leave_the_hint(self) -> None:
        # One job for one waiting claim (a producer one job at a time): that claim takes
        # it, so a claim arriving meanwhile reads first.
        waiters = Waiters()
        hint = waiters.hint
        hint.note_claim(["sum"], limit=2, claimed=1, notices_before=hint.notices)
        with waiters.watch_operations(["sum"], limit=2) as watch:
            waiters.jobs_available(["sum"], 1)
            assert watch.event.is_set() and not hint.jobs_likely(["sum"])
            waiters.jobs_available(["sum"], 5)  # more than the waiting claims can take
            assert hint.jobs_likely(["sum"])

    def test_jobs_a_woken_claim_could_not_take_make_jobs_likely(self) -> None:
        waiters = Waiters()
        hint = waiters.hint
        hint.note_claim(["sum"], limit=1, claimed=0, notices_before=hint.notices)
        with waiters.watch_operations(["sum"], limit=1) as watch:
            waiters.jobs_available(["sum"], 1)
            assert not hint.jobs_likely(["sum"])
            waiters.begin_claim(watch)
            waiters.settle(watch, claimed=0, jobs_left=True)  # at its cap, say
            assert hint.jobs_likely(["sum"])  # nobody else waits to take it
