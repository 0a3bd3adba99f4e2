"""Values the bot works with: its lifecycle states, a claimed `Job`, its `Assignment`."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botfleet.clock import parse_rfc3339
from botfleet.protocol import messages as m

log = logging.getLogger(__name__)


class BotState(enum.Enum):
    """The bot's lifecycle; the value is what heartbeats send as `state`."""

    BOOTSTRAP = "bootstrap"  # settings, identity, plugins, outbox checked
    REGISTER = "register"  # registering with the coordinator
    SYNC = "sync"  # applying assignment/config, flushing the outbox
    IDLE = "idle"  # nothing running, waiting for work
    CLAIM = "claim"  # asking for jobs
    PROCESS = "process"  # running jobs
    REPORT = "report"  # delivering results
    DEGRADED_NET = "degraded_net"  # the coordinator is unreachable: reports go to the outbox
    DRAINING = "draining"  # no more claims; finishing running jobs, flushing
    SHUTDOWN = "shutdown"  # stopped cleanly
    BACKOFF = "backoff"  # waiting before the next attempt
    QUARANTINED = "quarantined"  # told to stop taking work, still heartbeating
    SAFE_HALT = "safe_halt"  # cannot go on safely (e.g. the outbox cannot keep reports)

    # Members are singletons, equal only to themselves: hashed by identity, in C. Enum's
    # own hash is Python code hashing the name, and states meet sets and dicts several
    # times a job (the lifecycle table, the work states).
    __hash__ = object.__hash__


ProgressSink = Callable[[str, float, str | None], None]
LogSink = Callable[[str, int, str, str | bytes], None]  # job id, attempt, level, text
LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
_handler_log = logging.getLogger("botfleet.job")


class _Flag:
    """Raised once, read from any thread. Nobody waits on it, so a `threading.Event`
    (a lock and a condition, made for every job) is more than it needs: one attribute
    write is seen whole by every thread."""

    __slots__ = ("up",)

    def __init__(self) -> None:
        self.up = False


@dataclass(frozen=True, slots=True)
class Job:
    """One claimed job, as a handler sees it."""

    id: str
    op: str
    payload: Mapping[str, Any]
    attempt: int = 1
    lease_until: datetime | None = None
    timeout_s: float | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    on_progress: ProgressSink | None = field(default=None, repr=False, compare=False)
    on_log: LogSink | None = field(default=None, repr=False, compare=False)
    _cancelled: _Flag = field(default_factory=_Flag, repr=False, compare=False)

    def cancelled(self) -> bool:
        """True once the bot stopped waiting for this job (cancel, timeout, end of a drain).

        An async handler is cancelled outright; a plain handler runs in a thread that
        cannot be stopped, so a long one should check this now and then and return.
        """
        return self._cancelled.up

    def cancel(self) -> None:
        """Mark the job cancelled (the bot does this; `cancelled()` reads it, from any thread)."""
        self._cancelled.up = True

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Tell the coordinator how far the job is (0..1); callable from a thread too.

        Only the latest value is sent, at most once per progress interval.
        """
        if isinstance(fraction, bool) or not 0.0 <= fraction <= 1.0:
            raise ValueError(f"progress must be a fraction between 0 and 1, got {fraction!r}")
        if self.on_progress is not None:
            self.on_progress(self.id, float(fraction), message)

    def log(self, text: str | bytes, level: str = "info") -> None:
        """Add a line to this job's log (kept by the coordinator, per attempt); callable
        from a thread too. Never blocks: past the bot's buffer, lines are dropped and
        counted. Bytes are decoded as UTF-8, a bad byte replaced."""
        if level not in LOG_LEVELS:
            raise ValueError(f"level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
        if self.on_log is not None:
            self.on_log(self.id, self.attempt, level, text)
        else:  # run outside a bot (a test): the bot's own log, or the job's if captured
            _handler_log.log(LOG_LEVELS[level], "%s", text)

    @classmethod
    def from_claimed(
        cls,
        claimed: m.ClaimedJob,
        on_progress: ProgressSink | None = None,
        on_log: LogSink | None = None,
    ) -> Job:
        return cls(
            id=claimed.id,
            op=claimed.op,
            payload=claimed.payload,
            attempt=claimed.attempt,
            lease_until=_moment(claimed.lease_until, claimed.id),
            timeout_s=claimed.timeout_s if claimed.timeout_s and claimed.timeout_s > 0 else None,
            metadata=claimed.metadata,
            on_progress=on_progress,
            on_log=on_log,
        )


# The jobs of one claim share their lease_until: the last one read is kept, so a claim
# of many jobs parses it once (a parse costs more than the rest of `from_claimed`).
_last_moment: tuple[str, datetime] | None = None


def _moment(text: str | None, job_id: str) -> datetime | None:
    global _last_moment
    if not text:
        return None
    last = _last_moment
    if last is not None and last[0] == text:
        return last[1]
    try:
        moment = parse_rfc3339(text)
    except ValueError:
        log.warning("job %s: unreadable lease_until %r ignored", job_id, text)
        return None
    _last_moment = (text, moment)
    return moment


@dataclass(frozen=True, slots=True)
class Assignment:
    """What the coordinator lets the bot do; empty `operations` means all it can."""

    operations: tuple[str, ...] = ()
    max_concurrency: int = 1
    paused: bool = False

    @classmethod
    def from_wire(cls, wire: m.Assignment) -> Assignment:
        return cls(tuple(wire.operations), wire.max_concurrency, wire.paused)

    def claimable(self, capabilities: tuple[str, ...]) -> tuple[str, ...]:
        """The operations to claim: assigned and handled by this bot."""
        if not self.operations:
            return capabilities
        return tuple(op for op in self.operations if op in capabilities)
