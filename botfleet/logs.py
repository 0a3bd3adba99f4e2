"""Logging for every botfleet process: readable lines by default, JSON lines on request.

Each line carries the bot's id and, inside a job, the job's id where they apply.
Both come from context variables: `bot_context` holds a mutable `LogContext` (set
once per bot, so tasks started before registration see the id it gets later),
`job_context` sets the job id for the code of one job (a thread handler inherits it).
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, TextIO

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
CONTEXT_FIELDS = ("bot_id", "job_id")


@dataclass(slots=True)
class LogContext:
    bot_id: str | None = None


_bot: ContextVar[LogContext | None] = ContextVar("botfleet_bot", default=None)
_job: ContextVar[str | None] = ContextVar("botfleet_job", default=None)


def bot_context() -> LogContext:
    """This task's bot log context, created on first use (tasks inherit it)."""
    context = _bot.get()
    if context is None:
        context = LogContext()
        _bot.set(context)
    return context


class job_context:
    """The job id of the log lines written inside it. A class, not a generator: a busy
    bot enters one for every job, and a generator's context manager costs three times
    as much."""

    __slots__ = ("_job_id", "_token")

    def __init__(self, job_id: str) -> None:
        self._job_id = job_id
        self._token: Token[str | None] | None = None

    def __enter__(self) -> None:
        self._token = _job.set(self._job_id)

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _job.reset(self._token)
            self._token = None


class ContextFilter(logging.Filter):
    """Adds `bot_id` and `job_id` to every record: an explicit `extra=` wins, then the
    context variables, else None."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "bot_id", None) is None:
            context = _bot.get()
            record.bot_id = context.bot_id if context else None
        if getattr(record, "job_id", None) is None:
            record.job_id = _job.get()
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        tags = [
            f"{name}={value}" for name in CONTEXT_FIELDS if (value := getattr(record, name, None))
        ]
        if not tags:
            return line
        first, newline, rest = line.partition("\n")
        return f"{first} [{' '.join(tags)}]{newline}{rest}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def make_handler(fmt: LogFormat = "text", stream: TextIO | None = None) -> logging.Handler:
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {fmt!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    return handler


def configure_logging(
    fmt: LogFormat = "text", level: int = logging.INFO, stream: TextIO | None = None
) -> logging.Handler:
    """Send the root logger's records to `stream` in `fmt`; returns the handler it added."""
    handler = make_handler(fmt, stream)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    # aiohttp's access log and chatty libraries stay at warnings.
    logging.getLogger("aiohttp").setLevel(max(level, logging.WARNING))
    return handler
