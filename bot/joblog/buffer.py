"""The bounded buffer of job log lines waiting to be sent, shared by every running job.

Handlers write from the event loop and from their threads, so each write takes a lock
for the few operations it needs, and never waits for anything else: logging never holds
a handler back. A full buffer keeps what it has and counts what it refuses, per attempt;
the attempt's next batch ends with one line saying how many were dropped. Secrets (the
values of the variables `BOT_REDACT` names) are masked before a line is kept.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from botfleet.clock import Clock
from botfleet.protocol.joblogs import LogLevel, LogLine

REDACTED = "[REDACTED]"
MAX_LINE_CHARS = 8192  # the protocol's longest line; a longer one is cut
MIN_SECRET_CHARS = 3  # shorter values would mask half of every line


@dataclass(frozen=True, slots=True)
class Redactor:
    """Masks the values of secrets in a line."""

    secrets: tuple[str, ...] = ()

    @classmethod
    def from_environment(cls, names: Iterable[str], environ: Mapping[str, str]) -> Redactor:
        values = {environ.get(name, "") for name in names}
        # The longest first: a secret containing another is masked whole.
        kept = sorted((v for v in values if len(v) >= MIN_SECRET_CHARS), key=len, reverse=True)
        return cls(tuple(kept))

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


AttemptKey = tuple[str, int]  # (job id, attempt)
_Entry = tuple[str, int, datetime | None, str, str]  # job id, attempt, time, level, text


Line = LogLine  # a line as it is sent


@dataclass(slots=True)
class Batch:
    """Lines of one attempt, in the order they were written."""

    job_id: str
    attempt: int
    lines: list[Line] = field(default_factory=list)
    dropped: int = 0  # lines the full buffer refused before these were sent
    chars: int = 0


class LogBuffer:
    def __init__(self, clock: Clock, capacity: int = 10_000, redact: Redactor | None = None):
        if capacity < 1:
            raise ValueError(f"a log buffer holds at least one line, got {capacity}")
        self._clock = clock
        self.capacity = capacity
        self._redact = redact or Redactor()
        self._lock = threading.Lock()
        # Lines in the order written, as plain tuples (the cheapest thing to make on a
        # handler's path); a None time marks where an attempt began to lose lines (its
        # marker goes there, with the count of `_dropped`).
        self._lines: deque[_Entry] = deque()
        self._dropped: dict[AttemptKey, int] = {}
        self._held = 0  # lines in `_lines` (its markers not counted)
        self.dropped_total = 0  # lines ever refused (a counter)

    def __len__(self) -> int:
        return len(self._lines)

    def write(self, job_id: str, attempt: int, level: str, text: str | bytes) -> None:
        """Keep one line of this attempt, or count it as dropped when the buffer is full."""
        if text.__class__ is not str:
            text = _as_text(text)
        if len(text) > MAX_LINE_CHARS:
            text = text[: MAX_LINE_CHARS - 1] + "…"
        if self._redact.secrets:
            text = self._redact(text)
        entry = (job_id, attempt, self._clock.now(), level, text)
        with self._lock:
            if self._held < self.capacity:
                self._lines.append(entry)
                self._held += 1
                return
            self.dropped_total += 1
            key = (job_id, attempt)
            count = self._dropped.get(key)
            if count is None:  # one marker per run of lost lines
                self._lines.append((job_id, attempt, None, level, ""))
            self._dropped[key] = (count or 0) + 1

    def take(self, round_lines: int, batch_lines: int, batch_chars: int) -> list[Batch]:
        """Up to `round_lines` of the oldest lines, as batches per attempt of at most
        `batch_lines` lines and `batch_chars` characters. Where an attempt lost lines,
        its batch has one line saying how many, and their count in `dropped`."""
        with self._lock:
            taken: list[tuple[AttemptKey, Line]] = []
            lost: dict[AttemptKey, int] = {}
            while self._lines and len(taken) < round_lines:
                job_id, attempt, ts, level, text = self._lines.popleft()
                key = (job_id, attempt)
                if ts is None:
                    count = self._dropped.pop(key, 0)
                    if not count:
                        continue
                    lost[key] = lost.get(key, 0) + count
                    marker = dropped_marker(count)
                    line = LogLine(ts=self._clock.now(), level="warning", text=marker)
                else:
                    self._held -= 1
                    line = LogLine(ts=ts, level=cast(LogLevel, level), text=_sendable(text))
                taken.append((key, line))
        open_batches: dict[AttemptKey, Batch] = {}
        batches: list[Batch] = []
        for key, line in taken:
            batch = open_batches.get(key)
            size = len(line.text)
            full = batch is not None and (
                len(batch.lines) >= batch_lines or batch.chars + size > batch_chars
            )
            if batch is None or full:
                batch = open_batches[key] = Batch(key[0], key[1])
                batches.append(batch)
            batch.lines.append(line)
            batch.chars += size
        for key, count in lost.items():
            open_batches[key].dropped += count
        return batches

    def put_back(self, batches: list[Batch]) -> None:
        """Batches that could not be sent now go back in front of newer lines, whole: the
        buffer may hold one round more than its capacity until they are sent."""
        with self._lock:
            for batch in reversed(batches):
                job_id, attempt = batch.job_id, batch.attempt
                self._lines.extendleft(
                    (job_id, attempt, line.ts, line.level, line.text)
                    for line in reversed(batch.lines)
                )
                self._held += len(batch.lines)

    def clear(self) -> int:
        """Forget every line (the coordinator takes none); returns how many."""
        with self._lock:
            count = self._held
            self._lines.clear()
            self._dropped.clear()
            self._held = 0
        return count


def dropped_marker(count: int) -> str:
    return f"[botfleet] {count} line(s) dropped: the bot's log buffer was full"


def _as_text(text: object) -> str:
    if isinstance(text, bytes | bytearray):
        return bytes(text).decode("utf-8", "replace")
    return str(text)


def _sendable(text: str) -> str:
    """The text as valid UTF-8 (a lone surrogate, from bytes decoded with
    `surrogateescape` for example, cannot be sent)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text
