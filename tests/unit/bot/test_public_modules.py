"""The modules users import keep their names, whatever moved inside the package."""

from __future__ import annotations

import bot
import bot.api
import bot.outbox
import bot.scheduler
from bot.jobs import op
from bot.link.http import HttpApi
from bot.reports.outbox import Outbox
from bot.state import Job
from bot.work.scheduler import Scheduler


def test_the_plugin_api() -> None:
    assert (bot.op, bot.Job) == (op, Job)
    assert bot.__all__ == ["Job", "PluginError", "op"]


def test_moved_modules_answer_under_their_old_names() -> None:
    assert bot.api.HttpApi is HttpApi
    assert bot.outbox.Outbox is Outbox
    assert bot.scheduler.Scheduler is Scheduler
