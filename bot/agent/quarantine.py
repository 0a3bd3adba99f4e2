"""Quarantine: the bot stops taking work but stays registered and heartbeating.

It is entered on the coordinator's `quarantine` command, or by the bot itself when
one handler crashes `crash_loop_limit` times in a row (a crash loop: a broken
handler would otherwise fail job after job, fast). It is left on `release`.

The reason is kept in `quarantine.json` in the state folder, so a bot restarted
while quarantined stays so until released. That is best effort: a folder that
cannot take the file loses only this memory (logged), never a report.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import msgspec

from bot.system.disk import Disk

log = logging.getLogger(__name__)

QUARANTINE_FILE = "quarantine.json"


class _QuarantineFile(msgspec.Struct, kw_only=True):
    reason: str


class CrashLoop:
    """Crashes in a row per operation; `note` says when one reaches the limit (0: never)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._streaks: Counter[str] = Counter()

    def note(self, op: str, crash: str | None) -> str | None:
        """Count a finished job of `op` (`crash`: why its handler crashed, or None); the
        reason to quarantine when this crash makes `limit` in a row."""
        if crash is None:
            self._streaks.pop(op, None)
            return None
        self._streaks[op] += 1
        if self.limit and self._streaks[op] >= self.limit:
            count = self._streaks.pop(op)
            return f"crash loop: the handler of {op!r} failed {count} times in a row ({crash})"
        return None

    def reset(self) -> None:
        self._streaks.clear()


class Quarantine:
    def __init__(self, state_dir: Path, *, disk: Disk | None = None, crash_loop_limit: int) -> None:
        self.path = state_dir / QUARANTINE_FILE
        self._disk = disk or Disk()
        self.crash_loop = CrashLoop(crash_loop_limit)
        self.reason: str | None = None

    @property
    def active(self) -> bool:
        return self.reason is not None

    def load(self) -> None:
        """Take up a quarantine a previous run left (a broken file is ignored, logged)."""
        try:
            data = self._disk.read_bytes(self.path)
        except OSError as exc:
            log.warning("cannot read %s: %s", self.path, exc)
            return
        if data is None:
            return
        try:
            self.reason = msgspec.json.decode(data, type=_QuarantineFile).reason
        except msgspec.DecodeError as exc:
            log.warning("%s is unreadable (%s): not quarantined", self.path, exc)
            return
        log.warning("still quarantined from a previous run: %s", self.reason)

    def enter(self, reason: str) -> bool:
        """Quarantine for `reason`; False when already quarantined."""
        if self.reason is not None:
            return False
        self.reason = reason
        log.warning("quarantined: %s (release: botfleet bots release BOT_ID)", reason)
        try:
            data = msgspec.json.encode(_QuarantineFile(reason=reason)) + b"\n"
            self._disk.write_atomic(self.path, data)
        except OSError as exc:
            log.warning("cannot keep %s (%s): a restart forgets the quarantine", self.path, exc)
        return True

    def release(self) -> bool:
        """Leave the quarantine; False when not quarantined."""
        if self.reason is None:
            return False
        log.info("released from quarantine (was: %s)", self.reason)
        self.reason = None
        self.crash_loop.reset()
        try:
            self._disk.remove(self.path)
        except OSError as exc:
            log.warning("cannot remove %s (%s): a restart would quarantine again", self.path, exc)
        return True

    def note_job(self, op: str, crash: str | None) -> bool:
        """Count a finished job; True when it starts a crash-loop quarantine."""
        reason = self.crash_loop.note(op, crash)
        return reason is not None and self.enter(reason)
