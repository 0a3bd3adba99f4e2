"""BOT_METRICS_PORT: the bot serves Prometheus metrics read from its live state."""

from __future__ import annotations

import socket

import aiohttp
import pytest

from bot.agent.lifecycle import WORK_STATES
from bot.errors import NetworkError
from bot.machine import EXIT_BAD_SETTINGS, EXIT_OK
from bot.testing import FakeCoordinator
from tests.unit.bot.conftest import StartBot, eventually


async def test_metrics_are_served(start_bot: StartBot) -> None:
    fake = FakeCoordinator()
    fake.add_job("sum", {"a": 1, "b": 2})
    fake.add_job("sum", {"a": "x", "b": 2})
    fake.fail_next("complete", *(NetworkError("down") for _ in range(1000)))
    fake.fail_next("fail", *(NetworkError("down") for _ in range(1000)))
    running = start_bot(fake, metrics_port=0)
    await eventually(lambda: len(running.bot.outbox) == 2, "both reports kept")
    await running.bot.lifecycle.wait_for(WORK_STATES)
    port = running.bot.metrics_port
    assert port

    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        assert response.status == 200
        text = await response.text()

    assert 'botfleet_bot_jobs_total{op="sum",outcome="succeeded"} 1.0' in text
    assert 'botfleet_bot_jobs_total{op="sum",outcome="failed"} 1.0' in text
    assert 'botfleet_bot_reports_total{outcome="kept"} 2.0' in text
    assert "botfleet_bot_outbox_reports 2.0" in text
    assert "botfleet_bot_slots 2.0" in text and "botfleet_bot_running_jobs 0.0" in text
    assert 'botfleet_bot_state{state="bootstrap"} 0.0' in text
    for name in (
        "botfleet_bot_circuit_opened_total",
        "botfleet_bot_loop_lag_seconds",
        "botfleet_bot_loop_stalls_total",
        "botfleet_bot_threads_left_behind",
        "botfleet_bot_threads_abandoned_total",
        "botfleet_bot_prefetched_jobs",
        "botfleet_bot_prefetch_released_total",
    ):
        assert f"\n{name} " in text, name
    assert await running.stop() == EXIT_OK


async def test_metrics_port_in_use_is_a_bad_setting(
    start_bot: StartBot, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        running = start_bot(FakeCoordinator(), metrics_port=port)
        assert await running.exit_code() == EXIT_BAD_SETTINGS
    assert f"BOT_METRICS_PORT: cannot listen on {port}" in caplog.text
