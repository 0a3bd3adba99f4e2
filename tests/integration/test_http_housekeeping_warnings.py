"""At start-up the coordinator says what keeps retention from freeing space: on
PostgreSQL, autovacuum (or track_counts) off while --retain-finished deletes jobs. The
server's configuration is read, never changed: the warning comes exactly when the store
finds one."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from botfleet.clock import FakeClock
from coordinator.app import create_app
from coordinator.store.base import Store
from tests.integration.conftest import ClientFactory
from tests.integration.harness import server_config


@pytest.mark.parametrize("retain_finished_s", [3600.0, None])
async def test_the_store_s_housekeeping_warnings_are_logged_at_start_up(
    tmp_path: Path,
    clock: FakeClock,
    store: Store,
    aiohttp_client: ClientFactory,
    caplog: pytest.LogCaptureFixture,
    retain_finished_s: float | None,
) -> None:
    config = server_config(tmp_path, retain_finished_s=retain_finished_s)
    with caplog.at_level(logging.WARNING, logger="coordinator.app"):
        await aiohttp_client(create_app(config, store, clock))
    expected = await store.housekeeping_warnings(config.retention)

    logged = [r.getMessage() for r in caplog.records if r.name == "coordinator.app"]
    assert logged == expected
    if retain_finished_s is None:
        assert expected == []
