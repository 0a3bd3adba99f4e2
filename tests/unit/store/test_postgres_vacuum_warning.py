"""The start-up warning when PostgreSQL would never reclaim what retention deletes: with
an injected setting reader (the server's configuration is never changed), and read from
the real server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import asyncpg
import pytest

from coordinator.store.base import Retention
from coordinator.store.postgres import PostgresStore
from coordinator.store.postgres.retention import SettingReader, vacuum_warnings

KEEP_A_DAY = Retention(finished_s=86_400.0)


def settings(values: Mapping[str, str]) -> SettingReader:
    async def read(name: str) -> str:
        return values[name]

    return read


async def test_no_warning_when_autovacuum_runs() -> None:
    assert (
        await vacuum_warnings(settings({"autovacuum": "on", "track_counts": "on"}), KEEP_A_DAY)
        == []
    )


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"autovacuum": "off", "track_counts": "on"}, "autovacuum off"),
        ({"autovacuum": "on", "track_counts": "off"}, "track_counts off"),
        ({"autovacuum": "off", "track_counts": "off"}, "autovacuum off and track_counts off"),
    ],
)
async def test_a_warning_names_what_is_off(values: dict[str, str], named: str) -> None:
    (warning,) = await vacuum_warnings(settings(values), KEEP_A_DAY)
    assert named in warning and "--retain-finished" in warning


async def test_no_warning_when_finished_jobs_are_kept_for_ever() -> None:
    off = settings({"autovacuum": "off", "track_counts": "off"})
    assert await vacuum_warnings(off, Retention(finished_s=None)) == []


@pytest.mark.postgres
async def test_the_store_reads_the_servers_setting(
    make_store: Callable[..., Awaitable[PostgresStore]], pg_dsn: str
) -> None:
    store = await make_store()
    connection = await asyncpg.connect(pg_dsn)
    try:
        shown = {
            name: await connection.fetchval(f"SHOW {name}")
            for name in ("autovacuum", "track_counts")
        }
    finally:
        await connection.close()

    assert {name: await store.server_setting(name) for name in shown} == shown
    warnings = await store.housekeeping_warnings(KEEP_A_DAY)
    assert bool(warnings) == ("off" in shown.values())
    assert await store.housekeeping_warnings(Retention(finished_s=None)) == []
