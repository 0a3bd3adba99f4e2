"""A revoked bot halts for good: one line, exit 5, no goodbye, no second registration."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.agent.lifecycle import WORK_STATES
from bot.errors import AuthError, BotRevokedError
from bot.jobs import Registry, load_plugins
from bot.machine import EXIT_REVOKED
from bot.state import BotState, Job
from bot.testing import FakeCoordinator

from .conftest import StartBot, eventually, runs

S = BotState
REFUSAL = "register: 403 bot_revoked: bot bot_1 is revoked"


def _slow_registry() -> Registry:
    async def slow(job: Job) -> dict[str, bool]:
        await asyncio.Event().wait()
        return {"done": True}

    registry = load_plugins(Registry(), entry_points=())
    registry.register("slow", slow)
    return registry


async def test_a_bot_revoked_while_it_works_halts_once_and_for_good(
    start_bot: StartBot, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeCoordinator()
    job_id = fake.add_job("slow")
    running = start_bot(fake, heartbeat_interval_s=1.0, bot_options={"registry": _slow_registry()})
    await eventually(lambda: runs(running.bot, job_id), "job started")
    fake.fail_next("register", BotRevokedError(403, REFUSAL, code="bot_revoked"))
    fake.fail_next("heartbeat", AuthError(401, "heartbeat: 401 bot_revoked", code="bot_revoked"))

    assert await running.exit_code() == EXIT_REVOKED
    assert running.bot.state is S.SAFE_HALT
    assert fake.count("register") == 2
    assert fake.count("deregister") == 0
    (last,) = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert "this bot is revoked" in last.getMessage()
    assert "start it again once an operator has allowed it" in last.getMessage()


async def test_a_revoked_bot_that_starts_halts_at_its_first_registration(
    start_bot: StartBot,
) -> None:
    fake = FakeCoordinator()
    fake.fail_next("register", BotRevokedError(403, REFUSAL, code="bot_revoked"))
    running = start_bot(fake, heartbeat_interval_s=1.0)

    assert await running.exit_code() == EXIT_REVOKED
    assert running.bot.lifecycle.history == [S.BOOTSTRAP, S.REGISTER, S.SAFE_HALT]
    assert fake.count("register") == 1
    assert not WORK_STATES & set(running.bot.lifecycle.history)
