"""`make_scheduler` is the bot tests' fixture (tests/unit/bot/conftest.py)."""

from tests.unit.bot.conftest import MakeScheduler, make_scheduler

__all__ = ["MakeScheduler", "make_scheduler"]
