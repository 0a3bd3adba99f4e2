"""The rules of job logs every backend shares: the cap, its marker, when a log is
complete (with the fake clock)."""

from __future__ import annotations

from datetime import timedelta

from botfleet.clock import FakeClock
from coordinator.store.joblogs import (
    FOLLOW_GRACE_S,
    LogPage,
    LogSizes,
    NewLogLine,
    clean_line,
    finished_for_good,
    fit,
    marker_line,
)


def line(clock: FakeClock, text: str) -> NewLogLine:
    return NewLogLine(clock.now(), "info", text)


def test_fit_counts_utf8_bytes_and_stops_at_the_first_line_that_does_not_fit() -> None:
    clock = FakeClock()
    lines = [line(clock, "é" * 4), line(clock, "zz"), line(clock, "y")]
    kept, after = fit(LogSizes(last_seq=4, bytes=90), lines, 99)
    # "éééé" is 8 bytes and a newline (99); "zz" would pass the cap, so it and the line
    # after it drop.
    assert (kept, after) == (1, LogSizes(last_seq=5, bytes=99, dropped_lines=2, dropped_bytes=5))


def test_once_a_line_was_dropped_no_later_line_is_kept() -> None:
    clock = FakeClock()
    sizes = LogSizes(last_seq=3, bytes=10, dropped_lines=1, dropped_bytes=50)
    kept, after = fit(sizes, [line(clock, "a")], 1000)
    assert (kept, after) == (0, LogSizes(3, 10, 2, 52))


def test_the_marker_says_what_the_cap_dropped_after_the_last_kept_line() -> None:
    clock = FakeClock()
    page = LogPage("running", 2, None, LogSizes(last_seq=7, bytes=100, dropped_lines=3))
    assert marker_line(LogPage("running", 2, None, LogSizes(7, 100)), 100, clock.now()) is None
    marker = marker_line(page, 100, clock.now())
    assert marker is not None
    assert (marker.seq, marker.attempt, marker.level) == (8, 2, "warning")
    assert marker.text.startswith("[botfleet] 3 line(s), 0 byte(s) dropped")


def test_a_log_is_complete_once_the_job_ended_and_the_grace_passed() -> None:
    clock = FakeClock()
    assert not finished_for_good(LogPage("running", 1, None, LogSizes()), clock.now())
    ended = LogPage("failed", 1, clock.now(), LogSizes())
    assert not finished_for_good(ended, clock.now())
    clock.advance(FOLLOW_GRACE_S)
    assert finished_for_good(ended, clock.now())
    never_ran = LogPage("cancelled", 0, None, LogSizes())
    assert finished_for_good(never_ran, clock.now() - timedelta(days=1))


def test_clean_line_leaves_plain_text_alone_and_fixes_the_rest() -> None:
    clock = FakeClock()
    plain = line(clock, "plain ascii")
    assert clean_line(plain) is plain
    assert clean_line(line(clock, "a\x00b")).text == "a\ufffdb"
    assert clean_line(line(clock, "x\udc80y")).text == "x?y"
    assert clean_line(line(clock, "déjà vu")).text == "déjà vu"
