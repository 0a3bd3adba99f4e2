"""The outbox: reports the coordinator has not accepted yet, kept on disk as JSON lines.

- `append` writes a group of reports and fsyncs once; only then do they count as kept.
- A report leaves only after the coordinator accepted it (or refused it for good):
  `remove` rewrites the file through a temporary file and an atomic rename, so a
  crash at any moment leaves the old file or the new one, and loses nothing.
- A torn or unreadable line (a crash in the middle of an append) is skipped with a
  warning; the next append starts on a fresh line.
- A full disk (ENOSPC, EDQUOT) raises `OutboxFullError`; any other failure to
  write, `OutboxError`.

The file stays open between appends. Calls are synchronous: they run rarely (only
when delivery failed) and each costs one fsync.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

from bot.errors import OutboxError, OutboxFullError
from bot.system.disk import Disk
from botfleet.protocol import ProtocolError, decode, encode
from botfleet.protocol import messages as m

log = logging.getLogger(__name__)

OUTBOX_FILE = "outbox.jsonl"
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})

ReportKey = tuple[str, int | None, str]


def report_key(item: m.ReportItem) -> ReportKey:
    return (item.job_id, item.attempt, item.action)


def _error(action: str, path: Path, exc: OSError) -> OutboxError:
    if exc.errno in _DISK_FULL:
        return OutboxFullError(f"cannot {action} {path}: disk full ({exc.strerror})")
    return OutboxError(f"cannot {action} {path}: {exc}")


class Outbox:
    def __init__(self, state_dir: Path, *, disk: Disk | None = None) -> None:
        self.path = state_dir / OUTBOX_FILE
        self._disk = disk or Disk()
        self._items: list[m.ReportItem] = []
        self._handle: BinaryIO | None = None
        self._needs_newline = False

    def __len__(self) -> int:
        return len(self._items)

    def __enter__(self) -> Outbox:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def pending(self) -> list[m.ReportItem]:
        return list(self._items)

    def open(self) -> int:
        """Load what a previous run left and open for appending; returns how many wait."""
        try:
            self._disk.make_dir(self.path.parent)
            data = self._disk.read_bytes(self.path) or b""
        except OSError as exc:
            raise _error("read", self.path, exc) from exc
        self._items = list(self._parse(data))
        self._needs_newline = bool(data) and not data.endswith(b"\n")
        self._reopen()
        if self._items:
            log.info("outbox: %d report(s) from a previous run to deliver", len(self._items))
        return len(self._items)

    def append(self, items: Sequence[m.ReportItem]) -> None:
        """Keep `items` on disk (one write, one fsync); raises before they count as kept."""
        if not items:
            return
        handle = self._handle or self._reopen()
        data = b"".join(encode(item) + b"\n" for item in items)
        if self._needs_newline:
            data = b"\n" + data
        try:
            handle.write(data)
            self._disk.fsync(handle)
        except OSError as exc:
            # Part of the group may be on disk; start the next group on a fresh line.
            self._needs_newline = True
            raise _error("append to", self.path, exc) from exc
        self._needs_newline = False
        self._items.extend(items)

    def remove(self, done: Collection[ReportKey]) -> None:
        """Drop the reports whose key is in `done` (accepted, or refused for good)."""
        done = set(done)
        keep = [item for item in self._items if report_key(item) not in done]
        if len(keep) == len(self._items):
            return
        data = b"".join(encode(item) + b"\n" for item in keep)
        self.close()
        try:
            self._disk.write_atomic(self.path, data)
        except OSError as exc:
            raise _error("rewrite", self.path, exc) from exc
        finally:
            self._reopen()
        self._items = keep
        self._needs_newline = False

    def check(self) -> None:
        """Raise `OutboxError` when the outbox can no longer keep reports where the next start
        looks for them: its file was removed, moved or replaced, or its folder takes no writes.

        Appends alone would not notice: they go on writing to the open file wherever it went.
        """
        handle = self._handle or self._reopen()
        if not self._disk.same_file(self.path, handle):
            raise OutboxError(f"{self.path} is no longer the file this bot keeps reports in")
        try:
            self._disk.probe_dir(self.path.parent)
        except OSError as exc:
            raise _error("write in", self.path.parent, exc) from exc

    def close(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            try:
                handle.close()
            except OSError as exc:
                log.warning("outbox: closing %s failed: %s", self.path, exc)

    def _reopen(self) -> BinaryIO:
        self.close()
        try:
            self._handle = self._disk.open_append(self.path)
        except OSError as exc:
            raise _error("open", self.path, exc) from exc
        return self._handle

    def _parse(self, data: bytes) -> Iterable[m.ReportItem]:
        lines = data.split(b"\n")
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield decode(line, m.ReportItem)
            except ProtocolError as exc:
                where = "last line (torn by a crash?)" if number >= len(lines) - 1 else "line"
                log.warning("outbox: %s %d of %s skipped: %s", where, number, self.path, exc)
