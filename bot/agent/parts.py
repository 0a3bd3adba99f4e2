"""What registration and shutdown reach of a bot that is online: its parts, all present.

A protocol, so that those two depend on the parts and not on what assembles them.
"""

from __future__ import annotations

from typing import Protocol

from bot.agent.lifecycle import Lifecycle
from bot.agent.supervisor import Supervisor
from bot.link.circuit import CircuitBreaker
from bot.link.heartbeat import Heartbeat
from bot.link.http import Api
from bot.link.session import Session
from bot.logging_setup import LogContext
from bot.reports.outbox import Outbox
from bot.settings import Settings
from bot.state import BotState
from bot.work.scheduler import Scheduler
from botfleet.clock import Clock


class OnlineParts(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def lifecycle(self) -> Lifecycle: ...

    @property
    def session(self) -> Session: ...

    @property
    def api(self) -> Api: ...

    @property
    def circuit(self) -> CircuitBreaker: ...

    @property
    def scheduler(self) -> Scheduler: ...

    @property
    def heartbeat(self) -> Heartbeat: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def supervisor(self) -> Supervisor: ...

    @property
    def log_context(self) -> LogContext: ...

    def online_state(self) -> BotState:
        """The online state the conditions call for now."""
        ...
