"""The outbox keeps reports across crashes: fsynced appends, atomic rewrites, torn lines."""

from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path
from typing import BinaryIO

import pytest

from bot.errors import OutboxError, OutboxFullError
from bot.reports.outbox import OUTBOX_FILE, Outbox, report_key
from bot.system.disk import Disk
from bot.testing import FailingDisk
from botfleet.protocol import messages as m


def report(n: int, action: str = "complete") -> m.ReportItem:
    if action == "complete":
        return m.ReportItem(job_id=f"job_{n}", attempt=1, action="complete", result={"n": n})
    return m.ReportItem(job_id=f"job_{n}", attempt=1, action="fail", error="boom")


class CountingDisk(Disk):
    def __init__(self) -> None:
        self.fsyncs = 0

    def fsync(self, handle: BinaryIO) -> None:
        self.fsyncs += 1
        super().fsync(handle)


def test_append_survives_a_restart(tmp_path: Path) -> None:
    with Outbox(tmp_path) as outbox:
        outbox.append([report(1), report(2, "fail")])
        outbox.append([report(3)])
        assert len(outbox) == 3
    with Outbox(tmp_path) as reopened:
        assert [i.job_id for i in reopened.pending()] == ["job_1", "job_2", "job_3"]
        assert reopened.pending()[1].error == "boom"
    assert stat.S_IMODE((tmp_path / OUTBOX_FILE).stat().st_mode) == 0o600


def test_a_group_costs_one_fsync(tmp_path: Path) -> None:
    disk = CountingDisk()
    with Outbox(tmp_path, disk=disk) as outbox:
        outbox.append([report(n) for n in range(50)])
        outbox.append([])
    assert disk.fsyncs == 1


def test_remove_rewrites_atomically_and_keeps_the_rest(tmp_path: Path) -> None:
    with Outbox(tmp_path) as outbox:
        outbox.append([report(1), report(2), report(3)])
        outbox.remove({report_key(report(2))})
        outbox.remove(set())  # nothing to do: no rewrite
        assert [i.job_id for i in outbox.pending()] == ["job_1", "job_3"]
        outbox.append([report(4)])  # appends go to the new file
    with Outbox(tmp_path) as reopened:
        assert [i.job_id for i in reopened.pending()] == ["job_1", "job_3", "job_4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [OUTBOX_FILE]


def test_torn_last_line_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Outbox(tmp_path) as outbox:
        outbox.append([report(1), report(2)])
    path = tmp_path / OUTBOX_FILE
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 9])  # a crash in the middle of the last append
    caplog.set_level(logging.WARNING)

    with Outbox(tmp_path) as reopened:
        assert [i.job_id for i in reopened.pending()] == ["job_1"]
        assert "torn" in caplog.text
        reopened.append([report(3)])  # starts on a fresh line
    with Outbox(tmp_path) as again:
        assert [i.job_id for i in again.pending()] == ["job_1", "job_3"]


def test_garbage_in_the_middle_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / OUTBOX_FILE).write_bytes(
        b'{"job_id":"job_1","action":"complete"}\nnot json\n\n{"job_id":"job_2","action":"fail"}\n'
    )
    with Outbox(tmp_path) as outbox:
        assert [i.job_id for i in outbox.pending()] == ["job_1", "job_2"]
    assert "line 2" in caplog.text


class CrashBetweenSteps(Disk):
    """Raises once at one step of the rewrite, as a crash there would stop it."""

    def __init__(self, step: str) -> None:
        self.step: str | None = step

    def _crash_at(self, step: str) -> None:
        if self.step == step:
            self.step = None
            raise OSError(errno.EIO, f"crash at {step}")

    def write_atomic(self, path: Path, data: bytes) -> None:
        self._crash_at("start")
        super().write_atomic(path, data)

    def fsync(self, handle: BinaryIO) -> None:
        self._crash_at("fsync")
        super().fsync(handle)

    def replace(self, source: Path, target: Path) -> None:
        self._crash_at("replace")
        super().replace(source, target)


@pytest.mark.parametrize("step", ["start", "fsync", "replace"])
def test_crash_mid_flush_loses_nothing(tmp_path: Path, step: str) -> None:
    with Outbox(tmp_path) as outbox:
        outbox.append([report(1), report(2)])
    crashing = Outbox(tmp_path, disk=CrashBetweenSteps(step))
    crashing.open()  # reads only: the crash waits for the rewrite
    with pytest.raises(OutboxError, match="crash"):
        crashing.remove({report_key(report(1))})
    # Still usable: nothing was removed, and appends still land.
    assert [i.job_id for i in crashing.pending()] == ["job_1", "job_2"]
    crashing.append([report(3)])
    crashing.close()
    with Outbox(tmp_path) as reopened:
        assert [i.job_id for i in reopened.pending()] == ["job_1", "job_2", "job_3"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [OUTBOX_FILE]


def full_disk(code: int) -> FailingDisk:
    disk = FailingDisk()
    disk.append_errno = code
    return disk


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_full_disk_raises_outbox_full(tmp_path: Path, code: int) -> None:
    with Outbox(tmp_path) as outbox:
        outbox.append([report(1)])
    full = Outbox(tmp_path, disk=full_disk(code))
    full.open()
    with pytest.raises(OutboxFullError, match="disk full"):
        full.append([report(2)])
    assert len(full) == 1  # not counted as kept
    full.close()
    # The torn fragment is skipped; the next append starts a fresh line.
    with Outbox(tmp_path) as reopened:
        assert [i.job_id for i in reopened.pending()] == ["job_1"]
        reopened.append([report(3)])
    with Outbox(tmp_path) as again:
        assert [i.job_id for i in again.pending()] == ["job_1", "job_3"]


def test_full_disk_is_an_outbox_error_too() -> None:
    assert issubclass(OutboxFullError, OutboxError)


def test_other_write_errors_are_outbox_errors(tmp_path: Path) -> None:
    full = Outbox(tmp_path, disk=full_disk(errno.EIO))
    full.open()
    with pytest.raises(OutboxError) as caught:
        full.append([report(1)])
    assert not isinstance(caught.value, OutboxFullError)
    full.close()


def test_unwritable_folder_raises_outbox_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutboxError, match="cannot read"):
        Outbox(blocker / "state").open()


def test_open_failure_is_an_outbox_error(tmp_path: Path) -> None:
    class NoOpen(Disk):
        def open_append(self, path: Path) -> BinaryIO:
            raise PermissionError(errno.EACCES, "denied")

    with pytest.raises(OutboxError, match="cannot open"):
        Outbox(tmp_path, disk=NoOpen()).open()


def test_close_failure_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    class BadClose(Disk):
        def open_append(self, path: Path) -> BinaryIO:
            handle = super().open_append(path)
            original = handle.close

            def close() -> None:
                original()
                raise OSError("close failed")

            handle.close = close  # type: ignore[method-assign]
            return handle

    outbox = Outbox(tmp_path, disk=BadClose())
    outbox.open()
    outbox.close()
    assert "closing" in caplog.text


def test_outbox_check_notices_a_file_or_folder_gone(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with Outbox(state) as outbox:
        outbox.check()
        outbox.path.unlink()
        with pytest.raises(OutboxError, match="no longer the file"):
            outbox.check()
    with Outbox(state) as outbox:
        moved = tmp_path / "moved"
        state.rename(moved)
        state.write_text("a file where the folder was")
        with pytest.raises(OutboxError, match="no longer the file"):
            outbox.check()
        state.unlink()
        moved.rename(state)
        outbox.check()


def test_outbox_check_probes_the_folder(tmp_path: Path) -> None:
    class ReadOnly(FailingDisk):
        def probe_dir(self, path: Path) -> None:
            raise OSError(errno.EACCES, os.strerror(errno.EACCES))

    with (
        Outbox(tmp_path, disk=ReadOnly()) as outbox,
        pytest.raises(OutboxError, match="cannot write in"),
    ):
        outbox.check()
