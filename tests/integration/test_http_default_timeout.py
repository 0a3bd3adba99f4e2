"""Over HTTP, on every backend: `--default-job-timeout` gives a job without its own
timeout_s that time limit when it is handed out, and a lease that covers it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from botfleet.clock import FakeClock, parse_rfc3339
from coordinator.app import create_app
from coordinator.store.base import Store
from tests.integration.conftest import ClientFactory
from tests.integration.harness import Api, server_config

DEFAULT_S = 3600.0
JOB_LEASE_TTL_S = 180.0


async def test_a_job_without_timeout_s_is_handed_out_with_the_default(
    tmp_path: Path, clock: FakeClock, store: Store, aiohttp_client: ClientFactory
) -> None:
    config = server_config(
        tmp_path,
        default_job_timeout_s=DEFAULT_S,
        job_lease_ttl_s=JOB_LEASE_TTL_S,
        bot_lease_ttl_s=DEFAULT_S,  # the bot stays online while no heartbeat is sent
    )
    api = Api(await aiohttp_client(create_app(config, store, clock)), clock)
    bot = await api.register()
    plain = await api.submit()
    own = await api.submit(timeout_s=5)
    claimed = {job["id"]: job for job in await api.claim(bot)}
    assert claimed[plain]["timeout_s"] == DEFAULT_S
    assert claimed[own]["timeout_s"] == 5  # a job's own limit wins, shorter or not
    now = clock.now()
    assert parse_rfc3339(claimed[plain]["lease_until"]) == now + timedelta(seconds=DEFAULT_S)
    assert parse_rfc3339(claimed[own]["lease_until"]) == now + timedelta(seconds=JOB_LEASE_TTL_S)
    assert (await api.job(plain))["timeout_s"] is None  # the job itself is as submitted

    # The lease covers the default: past the job lease ttl, the reaper leaves it running.
    clock.advance(JOB_LEASE_TTL_S + 1)
    await api.ctx.reaper.run_once()
    assert (await api.job(plain))["state"] == "running"
    assert (await api.job(own))["state"] == "queued"
    # And every heartbeat renews it for as long.
    status, data = await api.heartbeat(bot, running=[plain])
    assert status == 200, data
    until = parse_rfc3339(data["extended"][plain])
    assert until == clock.now() + timedelta(seconds=DEFAULT_S)


async def test_without_the_flag_a_job_has_no_time_limit(api: Api) -> None:
    bot = await api.register()
    job_id = await api.submit()
    (claimed,) = await api.claim(bot)
    assert (claimed["id"], claimed["timeout_s"]) == (job_id, None)
