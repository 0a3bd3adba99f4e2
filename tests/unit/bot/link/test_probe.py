"""While the circuit is open the heartbeat probes on a short leash: it starts when the
circuit opens, retries at most `probe_max_backoff_ms` apart, and the first answer
brings the bot back (through SYNC), however long the heartbeat interval."""

from __future__ import annotations

import re

import pytest

from bot.errors import OverloadedError
from bot.machine import EXIT_OK
from bot.state import BotState
from bot.testing import FakeCoordinator
from tests.unit.bot.conftest import StartBot, eventually

S = BotState
# No regular heartbeat comes during these tests: only the probe can bring the bot back.
LONG = {"heartbeat_interval_s": 1e5, "bot_lease_ttl_s": 2e5}
RETRY = re.compile(r"heartbeat failed \(.*\); next try in ([0-9.]+) s")


async def test_the_probe_starts_when_the_circuit_opens_and_one_answer_brings_the_bot_back(
    start_bot: StartBot,
) -> None:
    fake = FakeCoordinator()
    running = start_bot(fake, **LONG)
    await running.bot.lifecycle.wait_for({S.IDLE, S.CLAIM})
    beats = fake.count("heartbeat")

    fake.unreachable = True  # the claims fail until the circuit opens
    await running.bot.lifecycle.wait_for({S.DEGRADED_NET})
    await eventually(lambda: fake.count("heartbeat") > beats, "a probe")
    fake.unreachable = False

    await running.bot.lifecycle.wait_for({S.IDLE, S.CLAIM, S.PROCESS, S.REPORT})
    history = running.bot.lifecycle.history
    assert history[history.index(S.DEGRADED_NET) + 1] is S.SYNC
    assert await running.stop() == EXIT_OK


async def test_probes_retry_at_most_the_probe_cap_apart(
    start_bot: StartBot, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeCoordinator()
    running = start_bot(fake, probe_max_backoff_ms=2_000, **LONG)
    await running.bot.lifecycle.wait_for({S.IDLE, S.CLAIM})
    fake.unreachable = True
    await running.bot.lifecycle.wait_for({S.DEGRADED_NET})
    caplog.clear()
    beats = fake.count("heartbeat")

    # Enough failed probes that a backoff capped by the interval would be far above 2 s.
    await eventually(lambda: fake.count("heartbeat") >= beats + 8, "eight more probes")
    fake.unreachable = False

    waits = [float(found) for found in RETRY.findall(caplog.text)]
    assert len(waits) >= 7
    assert max(waits) <= 2.0 and min(waits) >= 0.5  # from MIN_BACKOFF_MS, jittered
    await running.bot.lifecycle.wait_for({S.IDLE, S.CLAIM, S.PROCESS, S.REPORT})
    assert await running.stop() == EXIT_OK


async def test_a_probe_shed_with_503_keeps_probing_on_the_short_leash(
    start_bot: StartBot, caplog: pytest.LogCaptureFixture
) -> None:
    """A 503 closes the circuit (the coordinator answered) but is no heartbeat: the bot
    is still DEGRADED_NET, so the next heartbeat goes on the probe's short leash, not
    after the backoff of a heartbeat the lease can wait for."""
    fake = FakeCoordinator()
    running = start_bot(fake, probe_max_backoff_ms=2_000, **LONG)
    await running.bot.lifecycle.wait_for({S.IDLE, S.CLAIM})
    fake.unreachable = True
    await running.bot.lifecycle.wait_for({S.DEGRADED_NET})
    shed = 8
    fake.fail_next("heartbeat", *[OverloadedError(503, "shedding load")] * shed)
    caplog.clear()
    beats = fake.count("heartbeat")
    fake.unreachable = False

    await running.bot.lifecycle.wait_for({S.IDLE, S.CLAIM, S.PROCESS, S.REPORT})
    assert fake.count("heartbeat") > beats + shed
    waits = [float(found) for found in RETRY.findall(caplog.text)]
    assert len(waits) >= shed and max(waits) <= 2.0
    assert await running.stop() == EXIT_OK
