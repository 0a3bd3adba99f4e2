"""The hand-out bookkeeping on its own: plain values, no event loop."""

from __future__ import annotations

from collections.abc import Iterator

from coordinator.longpoll.handout import Handout, answered, wake

SUM = ("sum",)


def test_wakes_claims_in_order_until_their_limits_cover_the_jobs() -> None:
    handout, woken = wake(Handout(SUM, remaining=3), [("a", 2), ("b", 2), ("c", 2)])
    assert woken == ["a", "b"]
    assert handout == Handout(SUM, remaining=3, covered=4)
    assert not handout.uncovered


def test_too_few_claims_leave_jobs_uncovered() -> None:
    handout, woken = wake(Handout(SUM, remaining=5), [("a", 1), ("b", 2)])
    assert woken == ["a", "b"]
    assert handout.covered == 3 and handout.uncovered


def test_a_covered_handout_wakes_nobody() -> None:
    covered = Handout(SUM, remaining=2, covered=2)
    assert wake(covered, [("a", 1)]) == (covered, [])
    assert wake(Handout(SUM, remaining=0), [("a", 1)]) == (Handout(SUM, remaining=0), [])


def test_reads_only_the_claims_it_wakes() -> None:
    read: list[str] = []

    def idle() -> Iterator[tuple[str, int]]:
        for claim in ("a", "b", "c"):
            read.append(claim)
            yield claim, 1

    _, woken = wake(Handout(SUM, remaining=2), idle())
    assert woken == read == ["a", "b"]


def test_a_claim_that_got_jobs_counts_them_off() -> None:
    handout = Handout(SUM, remaining=4, covered=5)
    assert answered(handout, limit=5, claimed=1, jobs_left=True) == Handout(SUM, 3, covered=0)


def test_an_empty_claim_with_a_job_due_leaves_the_jobs_to_hand_out() -> None:
    handout = Handout(SUM, remaining=1, covered=1)
    after = answered(handout, limit=1, claimed=0, jobs_left=True)
    assert after == Handout(SUM, remaining=1, covered=0) and after.uncovered


def test_an_empty_claim_with_nothing_due_ends_the_handout() -> None:
    # Another claim took the jobs: stop waking claims for them.
    handout = Handout(SUM, remaining=3, covered=2)
    after = answered(handout, limit=1, claimed=0, jobs_left=False)
    assert after == Handout(SUM, remaining=0, covered=1) and not after.uncovered
