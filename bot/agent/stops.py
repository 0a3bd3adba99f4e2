"""Requests to stop: a drain, a hard stop, a halt; events that the loops wait on.

The first stop request (a signal, or the coordinator's `drain`) drains; a second one
stops hard. A restart drains too, then exits for the supervisor to start the bot
again. A halt (`UnsafeError`) says going on is unsafe. Each may come at any time,
before the bot is online too; `bot.shutdown` acts on them.
"""

from __future__ import annotations

import asyncio
import logging

from bot.errors import UnsafeError

log = logging.getLogger(__name__)


class StopRequests:
    def __init__(self) -> None:
        self.stop = asyncio.Event()  # drain: no more claims, finish, leave
        self.hard = asyncio.Event()  # stop now
        self.halting = asyncio.Event()  # `unsafe` is set
        self.reason = ""
        self.restart = False  # the drain ends in an exit that asks for a new process
        self.unsafe: UnsafeError | None = None

    def may_work(self) -> bool:
        return not self.stop.is_set() and self.unsafe is None

    def request_stop(self, reason: str) -> None:
        """First call: drain. Second call: stop hard."""
        if self.stop.is_set():
            if not self.hard.is_set():
                log.warning("second stop request (%s): stopping hard", reason)
                self.hard.set()
            return
        self.request_drain(reason)

    def request_drain(self, reason: str) -> None:
        if not self.stop.is_set():
            log.info("stopping: %s", reason)
            self.reason = reason
            self.stop.set()

    def request_restart(self, reason: str) -> None:
        """Drain, then exit for a restart; nothing when the bot is ending already."""
        if self.may_work():
            self.restart = True
            self.request_drain(reason)

    def halt(self, error: UnsafeError) -> None:
        """Going on is unsafe: the first error is the one the bot ends with."""
        if self.unsafe is None:
            log.error("cannot go on safely: %s", error.why)
            self.unsafe = error
        self.halting.set()


class TaskEnds:
    """The events that end the side tasks, in the order the shutdown sets them: the claim
    loop first (no new work), then the report loop (once the jobs are done), then the rest."""

    def __init__(self) -> None:
        self.claims = asyncio.Event()
        self.reports = asyncio.Event()
        self.rest = asyncio.Event()
