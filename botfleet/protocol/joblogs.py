"""The wire contract of job logs and attempts (docs/protocol.md, "Job logs and attempts").

A bot sends its handlers' lines in batches (`LogBatch`, feature `logs`); producers and
operators read them back by cursor (`JobLogs`) and read every attempt of a job
(`AttemptList`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from botfleet.protocol.base import (
    Attempt,
    JobState,
    NonEmpty,
    NonNegInt,
    Struct,
    Timestamp,
)

LogLevel = Literal["debug", "info", "warning", "error", "critical"]
LOG_LEVELS: tuple[LogLevel, ...] = ("debug", "info", "warning", "error", "critical")

# A batch past either bound is refused whole with 413 (the bot sizes its batches below
# them); a longer line is cut to MAX_LINE_CHARS, never refused.
MAX_BATCH_LINES = 1000
MAX_BATCH_BYTES = 512 * 1024
MAX_LINE_CHARS = 8192


class LogLine(Struct, kw_only=True):
    ts: datetime  # when the handler logged it; without a zone: UTC
    level: LogLevel = "info"
    text: str


class LogBatch(Struct, kw_only=True):
    instance_id: NonEmpty
    attempt: Attempt
    lines: list[LogLine]
    # Lines the bot's full buffer lost before this batch (its marker line says so too).
    dropped: NonNegInt = 0


class JobLogBatch(Struct, kw_only=True):
    """One attempt's lines inside a `BulkLogRequest`."""

    job_id: NonEmpty
    attempt: Attempt
    lines: list[LogLine]
    dropped: NonNegInt = 0


class BulkLogRequest(Struct, kw_only=True):
    """Lines of several jobs in one call (feature `logs_bulk`); the limits of one batch
    apply to all its lines together."""

    instance_id: NonEmpty
    batches: list[JobLogBatch]


class BulkLogResult(Struct, kw_only=True):
    job_id: str
    attempt: int
    # accepted; conflict: the attempt was not handed to this bot; not_found: no such job
    status: Literal["accepted", "conflict", "not_found"]
    stored: int = 0
    dropped: int = 0


class BulkLogResponse(Struct, kw_only=True):
    results: list[BulkLogResult]


class LogBatchAccepted(Struct, kw_only=True):
    status: Literal["accepted"] = "accepted"
    stored: int = 0  # lines kept
    dropped: int = 0  # lines refused: the job's log reached its cap


class StoredLogLine(Struct, kw_only=True):
    seq: int  # the cursor: pass the last one seen as `after`
    attempt: int
    ts: Timestamp
    level: str
    text: str


class JobLogs(Struct, kw_only=True):
    job_id: str
    state: JobState
    lines: list[StoredLogLine]
    next_after: int  # `after` for the next read
    # The job ended and its bot's last lines had time to arrive: a follower stops.
    done: bool = False


class AttemptView(Struct, kw_only=True):
    attempt: int
    bot_id: str
    started_at: Timestamp
    ended_at: Timestamp | None = None
    # succeeded, failed, expired, released, cancelled, lost; None while it runs
    outcome: str | None = None
    error: str | None = None


class AttemptList(Struct, kw_only=True):
    attempts: list[AttemptView] = msgspec.field(default_factory=list)
