"""Job log lines in the store: the records, and the rules both backends share.

A job's lines are numbered from 1 (`seq`, the readers' cursor) across its attempts, and
stored in chunks, one per batch a bot sent (`encode_chunk`, `lines_of_chunks`). They are
kept up to a cap of bytes per job (a line's UTF-8 text and its newline): a batch keeps
its lines in order while they fit;
from the first line that does not, that line and every later one of the job is dropped
and only counted, so a reader sees one marker saying how much is missing
(`marker_line`) instead of a log with holes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import msgspec

from coordinator.store.records import ReportOutcome
from coordinator.store.rows import clean_text

# A finished job's bot may still be sending its last lines (logs never hold a result
# back): a follower keeps waiting this long after the job ended before it stops.
FOLLOW_GRACE_S = 2.0
TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_ENCODER = msgspec.json.Encoder()
_CHUNK = msgspec.json.Decoder(list[tuple[int, str, str]])


@dataclass(frozen=True, slots=True)
class NewLogLine:
    ts: datetime
    level: str
    text: str

    @property
    def size(self) -> int:
        """Its bytes against the cap: its text and a newline (so empty lines count too)."""
        text = self.text
        return 1 + (len(text) if text.isascii() else len(text.encode("utf-8")))


@dataclass(frozen=True, slots=True)
class LogAppend:
    """A bot's batch of lines of one attempt; at most `max_bytes` of text per job."""

    bot_id: str
    job_id: str
    attempt: int
    lines: Sequence[NewLogLine]
    max_bytes: int


@dataclass(frozen=True, slots=True)
class LogAppendOutcome:
    outcome: ReportOutcome  # CONFLICT: this attempt was not handed to this bot
    stored: int = 0
    dropped: int = 0


@dataclass(frozen=True, slots=True)
class LogSizes:
    """What a job's log holds so far."""

    last_seq: int = 0
    bytes: int = 0
    dropped_lines: int = 0
    dropped_bytes: int = 0


@dataclass(frozen=True, slots=True)
class LogLineRecord:
    seq: int
    attempt: int
    ts: datetime
    level: str
    text: str


@dataclass(frozen=True, slots=True)
class LogQuery:
    job_id: str
    attempt: int | None = None  # None: every attempt's lines
    after: int = 0
    limit: int = 1000


@dataclass(frozen=True, slots=True)
class LogPage:
    """Lines after a cursor, with what a reader needs to know whether more may come."""

    job_state: str
    job_attempt: int
    finished_at: datetime | None
    sizes: LogSizes
    lines: list[LogLineRecord] = field(default_factory=list)


def clean_line(line: NewLogLine) -> NewLogLine:
    """Text any backend can store: no NUL, no lone surrogate (never valid UTF-8)."""
    if line.text.isascii() and "\x00" not in line.text:  # nearly every line
        return line
    text = clean_text(line.text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return line if text is line.text else replace(line, text=text)


def fit(sizes: LogSizes, lines: Sequence[NewLogLine], max_bytes: int) -> tuple[int, LogSizes]:
    """How many of `lines` (from the first) the job's log keeps, and its sizes after."""
    kept = 0
    used = sizes.bytes
    if not sizes.dropped_lines:
        for line in lines:
            size = line.size
            if used + size > max_bytes:
                break
            used += size
            kept += 1
    refused = lines[kept:]
    return kept, LogSizes(
        last_seq=sizes.last_seq + kept,
        bytes=used,
        dropped_lines=sizes.dropped_lines + len(refused),
        dropped_bytes=sizes.dropped_bytes + sum(line.size for line in refused),
    )


def encode_chunk(lines: Sequence[NewLogLine]) -> str:
    """A batch's lines as one stored value: JSON [[ts_us, level, text], ...]."""
    rows = [((line.ts - _EPOCH) // _MICROSECOND, line.level, line.text) for line in lines]
    return _ENCODER.encode(rows).decode("utf-8")


def lines_of_chunks(
    chunks: Iterable[tuple[int, int, str]], after: int, limit: int
) -> list[LogLineRecord]:
    """The lines after `after` of chunks (first seq, attempt, JSON) in order, at most
    `limit` of them."""
    found: list[LogLineRecord] = []
    for first_seq, attempt, text in chunks:
        for offset, (us, level, line) in enumerate(_CHUNK.decode(text)):
            seq = first_seq + offset
            if seq <= after:
                continue
            ts = _EPOCH + timedelta(microseconds=us)
            found.append(LogLineRecord(seq, attempt, ts, level, line))
            if len(found) >= limit:
                return found
    return found


@dataclass(frozen=True, slots=True)
class Chunk:
    """One batch's kept lines as stored: lines `first_seq` to `last_seq` of a job."""

    job_id: str
    first_seq: int
    last_seq: int
    attempt: int
    lines: str  # encode_chunk


@dataclass(slots=True)
class AppendPlan:
    """What a call's batches write, decided over the rows its transaction read."""

    outcomes: list[LogAppendOutcome | None]  # None: refused (the backend reads why)
    chunks: list[Chunk]
    sizes: dict[str, LogSizes]  # the jobs whose sizes changed, as they are now


def plan_appends(
    batches: Sequence[LogAppend], held: set[tuple[str, int]], sizes: dict[str, LogSizes]
) -> AppendPlan:
    """Each batch in turn: refused unless its attempt is in `held` (handed to its bot),
    else its lines numbered after the job's last and kept while they fit its cap."""
    now = dict(sizes)
    plan = AppendPlan([], [], {})
    for batch in batches:
        if (batch.job_id, batch.attempt) not in held:
            plan.outcomes.append(None)
            continue
        current = now.get(batch.job_id, LogSizes())
        lines = [clean_line(line) for line in batch.lines]
        kept, now[batch.job_id] = fit(current, lines, batch.max_bytes)
        if kept:
            first, last = current.last_seq + 1, current.last_seq + kept
            plan.chunks.append(
                Chunk(batch.job_id, first, last, batch.attempt, encode_chunk(lines[:kept]))
            )
        plan.outcomes.append(LogAppendOutcome(ReportOutcome.ACCEPTED, kept, len(lines) - kept))
    plan.sizes = {job_id: after for job_id, after in now.items() if sizes.get(job_id) != after}
    return plan


def holder_refusal(job_found: bool) -> ReportOutcome:
    """Lines for a job that is unknown, or whose attempt was not handed to this bot."""
    return ReportOutcome.CONFLICT if job_found else ReportOutcome.NOT_FOUND


def marker_line(page: LogPage, max_bytes: int, now: datetime) -> LogLineRecord | None:
    """The one line saying what the cap dropped, after the last kept line; None if nothing
    was dropped."""
    sizes = page.sizes
    if not sizes.dropped_lines:
        return None
    return LogLineRecord(
        seq=sizes.last_seq + 1,
        attempt=page.job_attempt,
        ts=page.finished_at or now,
        level="warning",
        text=(
            f"[botfleet] {sizes.dropped_lines} line(s), {sizes.dropped_bytes} byte(s) dropped: "
            f"this job's log is capped at {max_bytes} bytes"
        ),
    )


def finished_for_good(page: LogPage, now: datetime) -> bool:
    """The job ended and its bot had time to send its last lines: no more will come."""
    if page.job_state not in TERMINAL_STATES:
        return False
    if page.finished_at is None:
        return True
    return now >= page.finished_at + timedelta(seconds=FOLLOW_GRACE_S)
