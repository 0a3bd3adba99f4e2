"""Which job a log line belongs to: the handler's context, for `job.log` and `logging`.

While a handler runs, a context variable holds its job's `JobLog`. Context variables
follow the code they belong to: an async handler's tasks inherit it, and a plain
handler's thread runs in a copy of the calling task's context (`HandlerThreads.call`).
So eight handlers logging at once each write to their own job, and a record logged
anywhere else (the bot's own work) belongs to no job. One `logging.Handler` on the root
logger (`install_handler`) sends the records logged inside a job to that job's log.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar, Token
from dataclasses import dataclass

from bot.joblog.buffer import LogBuffer

LEVELS = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "critical",
}


@dataclass(frozen=True, slots=True)
class JobLog:
    """Where one attempt's lines go."""

    job_id: str
    attempt: int
    buffer: LogBuffer

    def write(self, text: str | bytes, level: str = "info") -> None:
        self.buffer.write(self.job_id, self.attempt, level, text)


_current: ContextVar[JobLog | None] = ContextVar("botfleet_job_log", default=None)


def current_job_log() -> JobLog | None:
    return _current.get()


class capturing:
    """Records logged in this context (and the tasks and handler threads it starts) go
    to `job_log` (None: to no job). A class, not a generator: the runner enters one for
    every job, and a generator's context manager costs three times as much."""

    __slots__ = ("_job_log", "_token")

    def __init__(self, job_log: JobLog | None) -> None:
        self._job_log = job_log
        self._token: Token[JobLog | None] | None = None

    def __enter__(self) -> None:
        self._token = _current.set(self._job_log)

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None


def level_name(levelno: int) -> str:
    """The protocol's level for a `logging` level (a custom level: the one below it)."""
    name = LEVELS.get(levelno)
    if name is not None:
        return name
    below = [known for known in LEVELS if known <= levelno]
    return LEVELS[max(below)] if below else "debug"


class JobLogHandler(logging.Handler):
    """Sends each record logged inside a job to that job's log; ignores the others."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self._formatter = logging.Formatter("%(message)s")

    def emit(self, record: logging.LogRecord) -> None:
        job_log = _current.get()
        if job_log is None:
            return
        try:
            text = self._formatter.format(record)
        except Exception:  # a bad format string: logging's own way of saying so
            self.handleError(record)
            return
        job_log.write(text, level_name(record.levelno))


_installed: JobLogHandler | None = None


def install_handler(root: logging.Logger | None = None) -> JobLogHandler:
    """The job log handler on the root logger, added once per process."""
    global _installed
    root = root or logging.getLogger()
    if _installed is None:
        _installed = JobLogHandler()
    if _installed not in root.handlers:
        root.addHandler(_installed)
    return _installed
