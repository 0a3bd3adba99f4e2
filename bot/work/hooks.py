"""What the scheduler and its report loops ask of the bot around them.

`Online` (`bot.agent.online`) implements `SchedulerHooks`; `StandaloneHooks` serves a
scheduler used alone (tests, embedding).
"""

from __future__ import annotations

import logging
from typing import Protocol

from bot.errors import OutboxError
from bot.jobs import Outcome
from bot.state import BotState, Job

log = logging.getLogger(__name__)


class SchedulerHooks(Protocol):
    """What the scheduler asks of the bot around it (`Online` implements this)."""

    def may_claim(self) -> bool:
        """False while the lifecycle forbids new work (degraded, quarantined, draining)."""
        ...

    def activity_changed(self, activity: BotState) -> None: ...

    async def renew(self, generation: int) -> bool:
        """Register again after a 401/404; True when the bot is registered again."""
        ...

    def fatal(self, error: OutboxError) -> None:
        """The outbox cannot keep reports: the bot must stop taking work."""
        ...

    def backing_off(self, reason: str | None) -> None:
        """Claims wait after an error or load shedding (`reason`); None: the wait is over."""
        ...

    def reachable(self) -> bool:
        """False while the circuit is open: no calls but the heartbeat's probes."""
        ...

    def job_finished(self, job: Job, outcome: Outcome) -> None:
        """A job ended (its report is on its way): crash-loop accounting."""
        ...

    def threads_exhausted(self, abandoned: int) -> None:
        """More abandoned handler threads run than a bot lives with: it should drain and
        exit for its supervisor to restart it (only a new process is rid of them)."""
        ...


class StandaloneHooks:
    """Hooks for a scheduler used alone (tests, embedding): it may always claim, cannot
    re-register, and an outbox failure is raised to the caller of `tick()`."""

    def may_claim(self) -> bool:
        return True

    def activity_changed(self, activity: BotState) -> None:
        log.debug("activity: %s", activity.name)

    async def renew(self, generation: int) -> bool:
        return False

    def fatal(self, error: OutboxError) -> None:
        raise error

    def backing_off(self, reason: str | None) -> None:
        if reason is not None:
            log.debug("backing off: %s", reason)

    def reachable(self) -> bool:
        return True

    def job_finished(self, job: Job, outcome: Outcome) -> None:
        log.debug("job %s finished (%s)", job.id, outcome.report.action)

    def threads_exhausted(self, abandoned: int) -> None:
        log.warning("%d abandoned handler threads still run", abandoned)
