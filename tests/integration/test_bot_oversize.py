"""A 2 MiB result against the real coordinator, in-process: delivered under the default
limit (8 MiB), the job failed at once for good under a smaller `max_body_bytes`."""

from __future__ import annotations

from typing import Any

import pytest

from bot.jobs import Registry, load_plugins
from bot.state import Job
from botfleet.protocol import encode
from botfleet.protocol import messages as m
from tests.integration.test_bot_coordinator import (  # the fixtures
    StartBot,
    StartCoordinator,
    start_bot,
    start_coordinator,
)

__all__ = ["start_bot", "start_coordinator"]  # fixtures, used by name

MIB = 1024 * 1024
BIG = {"blob": "x" * (2 * MIB)}


def _registry() -> Registry:
    registry = load_plugins(Registry(), entry_points=())

    async def huge(job: Job) -> dict[str, Any]:
        return BIG

    registry.register("huge", huge)
    return registry


async def test_a_2_mib_result_fits_the_default_limit(
    start_coordinator: StartCoordinator, start_bot: StartBot
) -> None:
    coordinator = await start_coordinator()
    job_id = await coordinator.submit("huge", {})
    start_bot(coordinator, registry=_registry())

    view = await coordinator.finished(job_id)

    assert view["state"] == "succeeded" and view["result"] == BIG


@pytest.mark.parametrize(
    "features",
    [m.ALL_FEATURES, ()],
    ids=["all-features", "base-calls-only"],
)
async def test_a_2_mib_result_over_a_small_limit_fails_at_once(
    start_coordinator: StartCoordinator, start_bot: StartBot, features: tuple[str, ...]
) -> None:
    coordinator = await start_coordinator(max_body_bytes=MIB, features=features)
    big = await coordinator.submit("huge", {}, max_attempts=3)
    small = await coordinator.submit("sum", {"a": 1, "b": 2})
    bot = start_bot(coordinator, registry=_registry())

    view = await coordinator.finished(big)

    assert view["state"] == "failed" and view["attempt"] == 1, view
    assert f"{len(encode(BIG))} bytes" in view["error"] and f"{MIB} bytes" in view["error"]
    assert (await coordinator.finished(small))["result"] == {"result": 3}
    assert bot.bot.session is not None and bot.bot.session.max_body_bytes == MIB
