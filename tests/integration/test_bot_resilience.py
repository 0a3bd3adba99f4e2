"""The bot's lifecycle against the real coordinator, in-process: an outage longer than the
bot lease, fail-over to a second server base, quarantine (commanded and self-inflicted)
as the coordinator records it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from bot.api import HttpApi
from bot.errors import NetworkError
from bot.jobs import Registry, load_plugins
from bot.machine import EXIT_OK
from bot.state import BotState, Job
from botfleet.protocol import messages as m
from tests.integration.test_bot_coordinator import (  # the fixtures
    ENROLL,
    StartBot,
    StartCoordinator,
    eventually,
    start_bot,
    start_coordinator,
)
from tests.support.processes import free_port

__all__ = ["start_bot", "start_coordinator"]  # fixtures, used by name

S = BotState


class CuttableApi(HttpApi):
    """HTTP to the coordinator, through a network the test can cut."""

    cut = False

    async def _send(self, method: str, path: str, body: m.Struct, **options: Any) -> bytes:
        if self.cut:
            raise NetworkError(f"{method} {path}: the network is cut (test)")
        return await super()._send(method, path, body, **options)


def registry_with(**handlers: Any) -> Registry:
    registry = load_plugins(Registry(), entry_points=())
    for name, handler in handlers.items():
        registry.register(name, handler)
    return registry


async def test_an_outage_longer_than_the_bot_lease_loses_no_report(
    start_coordinator: StartCoordinator, start_bot: StartBot
) -> None:
    release = asyncio.Event()

    async def slow(job: Job) -> dict[str, bool]:
        await release.wait()
        return {"done": True}

    # The bot lease outlasts the time the circuit takes to open (a streak of 1 s), so the
    # bot is DEGRADED_NET before the coordinator gives it up (else a claim in flight
    # comes back 404 first, and the bot goes to REGISTER instead).
    coordinator = await start_coordinator(bot_lease_ttl_s=3.0, heartbeat_interval_s=0.2)
    job_id = await coordinator.submit("slow", {})
    async with aiohttp.ClientSession() as http:
        api = CuttableApi(http, [coordinator.base], timeout_s=5, enroll_token=ENROLL)
        bot = start_bot(coordinator, api=api, registry=registry_with(slow=slow))

        async def running() -> bool:
            return bool((await coordinator.job(job_id))["state"] == "running")

        await eventually(running, "the job running")
        api.cut = True
        await asyncio.wait_for(bot.bot.lifecycle.wait_for({S.DEGRADED_NET}), 30)

        async def given_up() -> bool:
            view = await coordinator.bot(bot.bot_id)
            return bool(view["state"] == "offline")

        await eventually(given_up, "the coordinator gives the bot up")
        assert (await coordinator.job(job_id))["state"] == "queued"  # requeued, a new attempt due
        release.set()  # the job ends while the network is still cut: its report is kept

        async def kept() -> bool:
            return len(bot.bot.outbox) == 1

        await eventually(kept, "the report kept in the outbox")
        api.cut = False

        view = await coordinator.finished(job_id)
        assert (view["state"], view["result"]) == ("succeeded", {"done": True})

        def after_the_cut() -> list[BotState]:
            history = bot.bot.lifecycle.history
            return history[history.index(S.DEGRADED_NET) + 1 :]

        # The outbox may deliver the kept report before the bot has registered again
        # (its token still holds): wait for the registration, not just the result.
        async def synced() -> bool:
            return S.SYNC in after_the_cut()

        await eventually(synced, "the bot registered again and synced")
        after = after_the_cut()
        back = after.index(S.SYNC)  # forgotten: registered again (retrying while still cut)
        assert after[0] is S.REGISTER and set(after[:back]) <= {S.REGISTER, S.BACKOFF}
        assert (await coordinator.bot(bot.bot_id))["state"] == "online"
        assert await bot.stop() == EXIT_OK


async def test_fails_over_to_the_next_server_base(
    start_coordinator: StartCoordinator, start_bot: StartBot
) -> None:
    coordinator = await start_coordinator()
    nobody_home = f"http://127.0.0.1:{free_port()}/v1"
    job_id = await coordinator.submit("sum", {"a": 20, "b": 22})
    bot = start_bot(coordinator, settings={"server_bases": (nobody_home, coordinator.base)})

    view = await coordinator.finished(job_id)
    assert view["result"] == {"result": 42}
    assert await bot.stop() == EXIT_OK


async def test_the_coordinator_records_quarantine_and_release(
    start_coordinator: StartCoordinator, start_bot: StartBot
) -> None:
    coordinator = await start_coordinator()
    bot = start_bot(coordinator)
    await bot.ready()

    async def lifecycle_is(state: str) -> None:
        async def reported() -> bool:
            view = await coordinator.bot(bot.bot_id)
            return bool(view["lifecycle"] == state and view["pending_command"] is None)

        await eventually(reported, f"the coordinator shows {state}")

    await coordinator.call("PATCH", f"/bots/{bot.bot_id}", {"command": "quarantine"})
    await lifecycle_is("quarantined")
    job_id = await coordinator.submit("sum", {"a": 1, "b": 1})
    await coordinator.call("PATCH", f"/bots/{bot.bot_id}", {"command": "release"})

    assert (await coordinator.finished(job_id))["result"] == {"result": 2}

    async def released() -> bool:
        view = await coordinator.bot(bot.bot_id)
        return bool(view["lifecycle"] != "quarantined" and view["pending_command"] is None)

    await eventually(released, "the coordinator shows the release")
    assert await bot.stop() == EXIT_OK


async def test_a_crash_loop_shows_as_quarantined_until_released(
    start_coordinator: StartCoordinator, start_bot: StartBot, tmp_path: Path
) -> None:
    async def broken(job: Job) -> dict[str, Any]:
        raise KeyError("config")

    coordinator = await start_coordinator()
    for _ in range(3):
        await coordinator.submit("broken", {}, max_attempts=1)
    bot = start_bot(
        coordinator, registry=registry_with(broken=broken), settings={"crash_loop_limit": 3}
    )

    async def quarantined() -> bool:
        if bot.bot.session is None or bot.bot.session.bot_id is None:
            return False
        return bool((await coordinator.bot(bot.bot_id))["lifecycle"] == "quarantined")

    await eventually(quarantined, "quarantined for a crash loop")
    job_id = await coordinator.submit("sum", {"a": 2, "b": 2})
    await coordinator.call("PATCH", f"/bots/{bot.bot_id}", {"command": "release"})
    assert (await coordinator.finished(job_id))["result"] == {"result": 4}
    assert await bot.stop() == EXIT_OK
