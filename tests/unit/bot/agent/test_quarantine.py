"""Crash loops per operation, and a quarantine kept across restarts until released."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from bot.agent.quarantine import QUARANTINE_FILE, CrashLoop, Quarantine
from bot.testing import FailingDisk


def test_crash_loop_counts_per_operation() -> None:
    loop = CrashLoop(3)
    assert loop.note("a", "boom") is None
    assert loop.note("b", "bang") is None  # another handler: its own streak
    assert loop.note("a", "boom") is None
    assert loop.note("a", None) is None  # a success ends the streak
    assert loop.note("a", "boom") is None and loop.note("a", "boom") is None
    reason = loop.note("a", "boom")
    assert reason is not None and "'a' failed 3 times in a row (boom)" in reason
    assert CrashLoop(0).note("a", "boom") is None  # 0: never


def test_quarantine_is_kept_across_restarts_until_released(tmp_path: Path) -> None:
    first = Quarantine(tmp_path, crash_loop_limit=2)
    assert not first.active
    assert first.note_job("x", "bug") is False
    assert first.note_job("x", "bug") is True
    assert first.active and "crash loop" in (first.reason or "")
    assert first.enter("again") is False

    second = Quarantine(tmp_path, crash_loop_limit=2)
    second.load()
    assert second.reason == first.reason
    assert second.release() is True and not second.active
    assert not (tmp_path / QUARANTINE_FILE).exists()
    assert second.release() is False

    third = Quarantine(tmp_path, crash_loop_limit=2)
    third.load()
    assert not third.active


def test_quarantine_file_problems_are_logged_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / QUARANTINE_FILE).write_text("{not json")
    broken = Quarantine(tmp_path, crash_loop_limit=1)
    broken.load()
    assert not broken.active and "unreadable" in caplog.text

    disk = FailingDisk()
    disk.rewrite_errno = errno.EROFS
    read_only = Quarantine(tmp_path, disk=disk, crash_loop_limit=1)
    assert read_only.enter("told so")
    assert "a restart forgets the quarantine" in caplog.text

    unreadable = Quarantine(tmp_path / "file" / "below", crash_loop_limit=1)
    (tmp_path / "file").write_text("x")
    unreadable.load()
    assert "cannot read" in caplog.text and not unreadable.active


def test_quarantine_release_that_cannot_remove_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Sticky(FailingDisk):
        def remove(self, path: Path) -> None:
            raise OSError(errno.EROFS, "read-only file system")

    quarantine = Quarantine(tmp_path, disk=Sticky(), crash_loop_limit=0)
    quarantine.enter("told so")
    assert quarantine.release()
    assert "a restart would quarantine again" in caplog.text
