"""Claim, run, report; the home of this is `bot.work.scheduler`."""

from bot.work.scheduler import Scheduler, TickResult

__all__ = ["Scheduler", "TickResult"]
