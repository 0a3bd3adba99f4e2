"""Over HTTP, on every backend: a job view carries `attempts_used`, the attempts charged
against max_attempts, beside `attempt`, the fencing number a lost claim also raises."""

from __future__ import annotations

from typing import Any

from botfleet.protocol import decode
from botfleet.protocol import messages as m
from tests.integration.harness import ADMIN, Api, Bot

INTERVAL_S = 30.0


async def _lose_the_claim(api: Api, bot: Bot, job_id: str) -> None:
    """Claim the job, then two heartbeats that do not list it: its answer never arrived."""
    (claimed,) = await api.claim(bot)
    assert claimed["id"] == job_id
    api.clock.advance(1)
    assert (await api.heartbeat(bot))[0] == 200
    api.clock.advance(INTERVAL_S)
    assert (await api.heartbeat(bot))[0] == 200


async def _listed(api: Api, job_id: str) -> dict[str, Any]:
    response = await api.client.get("/v1/jobs", headers=ADMIN)
    assert response.status == 200, await response.text()
    (job,) = [job for job in (await response.json())["jobs"] if job["id"] == job_id]
    return dict(job)


async def test_job_views_count_the_attempts_used_not_the_lost_claims(api: Api) -> None:
    bot = await api.register()
    job_id = await api.submit(max_attempts=1)
    view = await api.job(job_id)
    assert (view["attempt"], view["attempts_used"], view["max_attempts"]) == (0, 0, 1)
    await _lose_the_claim(api, bot, job_id)
    await _lose_the_claim(api, bot, job_id)
    view = await api.job(job_id)
    assert (view["state"], view["attempt"], view["attempts_used"]) == ("queued", 2, 0)

    (claimed,) = await api.claim(bot)
    assert claimed["attempt"] == 3  # the fencing number the bot reports with
    assert "attempts_used" not in claimed  # the bot's claim answer is unchanged
    view = await api.job(job_id)
    assert (view["state"], view["attempt"], view["attempts_used"]) == ("running", 3, 1)
    assert view["attempts_used"] <= view["max_attempts"] < view["attempt"]
    assert (await _listed(api, job_id))["attempts_used"] == 1

    status, _ = await api.post(
        f"/v1/jobs/{job_id}/fail",
        {"instance_id": bot.instance_id, "attempt": 3, "error": "boom"},
        bot.headers,
    )
    assert status == 200
    view = await api.job(job_id)
    assert (view["state"], view["attempt"], view["attempts_used"]) == ("failed", 3, 1)

    # An operator's retry starts a fresh budget: the answer carries it too.
    status, retried = await api.post(f"/v1/jobs/{job_id}/retry", {}, ADMIN)
    assert status == 200, retried
    assert (retried["state"], retried["attempt"], retried["attempts_used"]) == ("queued", 3, 0)
    # As the command line reads it.
    response = await api.client.get(f"/v1/jobs/{job_id}", headers=ADMIN)
    assert decode(await response.read(), m.JobView).attempts_used == 0
