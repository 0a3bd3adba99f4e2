"""The bot's log buffer: redaction, batching per attempt, the drop marker, with the fake clock."""

from __future__ import annotations

import threading

import pytest

from bot.joblog.buffer import MAX_LINE_CHARS, REDACTED, LogBuffer, Redactor, dropped_marker
from botfleet.clock import FakeClock


def texts(buffer: LogBuffer) -> list[tuple[str, int, list[str], int]]:
    return [
        (b.job_id, b.attempt, [line.text for line in b.lines], b.dropped)
        for b in buffer.take(1000, 1000, 10**6)
    ]


def test_secrets_named_in_bot_redact_are_masked() -> None:
    environ = {"API_KEY": "s3cr3t-value", "DB_PASSWORD": "hunter2", "SHORT": "ab", "EMPTY": ""}
    redact = Redactor.from_environment(
        ["API_KEY", "DB_PASSWORD", "SHORT", "EMPTY", "UNSET"], environ
    )
    buffer = LogBuffer(FakeClock(), redact=redact)
    buffer.write("job_1", 1, "info", "key=s3cr3t-value pw=hunter2 again s3cr3t-value")
    buffer.write("job_1", 1, "info", "ab stays: too short to mask")
    ((_, _, lines, _),) = texts(buffer)
    assert lines == [
        f"key={REDACTED} pw={REDACTED} again {REDACTED}",
        "ab stays: too short to mask",
    ]


def test_a_secret_inside_another_is_masked_whole() -> None:
    redact = Redactor.from_environment(["A", "B"], {"A": "token", "B": "token-and-more"})
    assert redact("x token-and-more y token") == f"x {REDACTED} y {REDACTED}"


def test_lines_are_batched_per_attempt_in_order_within_the_limits() -> None:
    clock = FakeClock()
    buffer = LogBuffer(clock)
    for i in range(5):
        buffer.write("job_a", 1, "info", f"a{i}")
        clock.advance(1)
        buffer.write("job_b", 2, "error", f"b{i}")
    batches = buffer.take(8, 3, 10**6)
    assert [(b.job_id, [line.text for line in b.lines]) for b in batches] == [
        ("job_a", ["a0", "a1", "a2"]),
        ("job_b", ["b0", "b1", "b2"]),
        ("job_a", ["a3"]),
        ("job_b", ["b3"]),
    ]
    assert batches[1].lines[0].level == "error"
    assert batches[0].lines[1].ts > batches[0].lines[0].ts
    assert len(buffer) == 2  # the round took 8 lines
    # A batch also ends at its characters' limit.
    buffer.write("job_b", 2, "info", "b5")
    assert [[line.text for line in b.lines] for b in buffer.take(10, 10, 3)] == [
        ["a4"],
        ["b4"],
        ["b5"],
    ]


def test_a_full_buffer_drops_lines_and_says_how_many_once() -> None:
    buffer = LogBuffer(FakeClock(), capacity=3)
    for i in range(10):
        buffer.write("job_1", 1, "info", f"line {i}")
    buffer.write("job_2", 1, "info", "lost too")
    assert (len(buffer), buffer.dropped_total) == (3 + 2, 8)  # three lines, two markers
    assert texts(buffer) == [
        ("job_1", 1, ["line 0", "line 1", "line 2", dropped_marker(7)], 7),
        ("job_2", 1, [dropped_marker(1)], 1),
    ]
    assert texts(buffer) == []  # said once


def test_unsent_batches_go_back_in_front_whole() -> None:
    buffer = LogBuffer(FakeClock(), capacity=4)
    for i in range(6):
        buffer.write("job_1", 1, "info", f"old {i}")
    unsent = buffer.take(100, 100, 10**6)
    buffer.write("job_1", 1, "info", "new")
    buffer.put_back(unsent)
    assert texts(buffer) == [
        ("job_1", 1, ["old 0", "old 1", "old 2", "old 3", dropped_marker(2), "new"], 0)
    ]


def test_the_marker_sits_where_the_lines_were_lost() -> None:
    buffer = LogBuffer(FakeClock(), capacity=2)
    for text in ("a", "b", "lost 1", "lost 2"):
        buffer.write("job_1", 1, "info", text)
    assert [line.text for b in buffer.take(1, 10, 100) for line in b.lines] == ["a"]
    buffer.write("job_1", 1, "info", "c")  # room again, after the loss
    assert texts(buffer) == [("job_1", 1, ["b", dropped_marker(2), "c"], 2)]


def test_bytes_long_lines_and_lone_surrogates_become_sendable_text() -> None:
    buffer = LogBuffer(FakeClock())
    buffer.write("job_1", 1, "info", b"caf\xc3\xa9 \xff")
    buffer.write("job_1", 1, "info", "x" * (MAX_LINE_CHARS + 10))
    buffer.write("job_1", 1, "info", b"bad \xff".decode("utf-8", "surrogateescape"))
    ((_, _, lines, _),) = texts(buffer)
    assert lines[0] == "café \ufffd"
    assert len(lines[1]) == MAX_LINE_CHARS and lines[1].endswith("…")
    assert lines[2] == "bad ?"
    for line in lines:
        line.encode("utf-8")


def test_writers_in_many_threads_lose_nothing_below_the_capacity() -> None:
    buffer = LogBuffer(FakeClock(), capacity=100_000)

    def write(job: int) -> None:
        for i in range(2000):
            buffer.write(f"job_{job}", 1, "info", f"{job}:{i}")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    by_job: dict[str, list[str]] = {}
    for batch in buffer.take(100_000, 100_000, 10**9):
        by_job.setdefault(batch.job_id, []).extend(line.text for line in batch.lines)
    assert by_job == {f"job_{n}": [f"{n}:{i}" for i in range(2000)] for n in range(8)}


def test_capacity_must_hold_a_line() -> None:
    with pytest.raises(ValueError, match="at least one line"):
        LogBuffer(FakeClock(), capacity=0)
