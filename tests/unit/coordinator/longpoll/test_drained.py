"""The claim hint on its own: plain values, no event loop."""

from __future__ import annotations

from coordinator.longpoll.drained import MAX_DRAINED_OPERATIONS, DrainedOperations


def test_jobs_are_likely_until_a_claim_comes_back_short() -> None:
    hint = DrainedOperations()
    assert hint.jobs_likely(["sum"])
    hint.note_claim(["sum"], limit=2, claimed=1, notices_before=hint.notices)
    assert not hint.jobs_likely(["sum"])


def test_a_full_claim_makes_jobs_likely_again() -> None:
    hint = DrainedOperations()
    hint.note_claim(["sum"], limit=2, claimed=0, notices_before=hint.notices)
    hint.note_claim(["sum"], limit=2, claimed=2, notices_before=hint.notices)
    assert hint.jobs_likely(["sum"])


def test_unclaimed_jobs_make_jobs_likely_and_count_as_a_notice() -> None:
    hint = DrainedOperations()
    hint.note_claim(["sum", "x"], limit=2, claimed=0, notices_before=hint.notices)
    before = hint.notices
    hint.jobs_unclaimed(["sum"])
    assert hint.notices == before + 1
    assert hint.jobs_likely(["sum"]) and not hint.jobs_likely(["x"])


def test_a_short_claim_that_overlapped_a_notice_says_nothing() -> None:
    hint = DrainedOperations()
    before = hint.notices
    hint.jobs_unclaimed(["resize"])
    hint.note_claim(["sum"], limit=2, claimed=0, notices_before=before)
    assert hint.jobs_likely(["sum"])


def test_the_set_is_bounded() -> None:
    hint = DrainedOperations()
    for n in range(MAX_DRAINED_OPERATIONS):
        hint.note_claim([f"op{n}"], limit=1, claimed=0, notices_before=hint.notices)
    assert not hint.jobs_likely(["op0"])
    hint.note_claim(["one_more"], limit=1, claimed=0, notices_before=hint.notices)
    assert hint.jobs_likely(["op0"]) and not hint.jobs_likely(["one_more"])
