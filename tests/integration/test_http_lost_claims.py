"""Over HTTP, on every backend: a claim answer that never reached the bot costs no
attempt. Two heartbeats that do not list the job put it back in the queue at once."""

from __future__ import annotations

from typing import Any

from tests.integration.harness import Api, Bot

INTERVAL_S = 30.0


async def _report(api: Api, bot: Bot, job_id: str, action: str, attempt: int, **fields: Any) -> int:
    body = {"instance_id": bot.instance_id, "attempt": attempt, **fields}
    response = await api.client.post(f"/v1/jobs/{job_id}/{action}", json=body, headers=bot.headers)
    return response.status


async def test_a_lost_claim_answer_is_handed_out_again_uncharged(api: Api) -> None:
    bot = await api.register()
    job_id = await api.submit(max_attempts=1)
    (lost,) = await api.claim(bot)  # the answer "never arrives": the bot does not run it
    assert lost["attempt"] == 1
    api.clock.advance(1)
    status, _ = await api.heartbeat(bot)
    assert status == 200
    assert (await api.job(job_id))["state"] == "running"  # one heartbeat is not enough
    api.clock.advance(INTERVAL_S)
    status, data = await api.heartbeat(bot)
    assert status == 200, data
    view = await api.job(job_id)
    assert (view["state"], view["attempt"], view["max_attempts"]) == ("queued", 1, 1)
    lost = api.ctx.metrics.registry.get_sample_value(
        "botfleet_claim_answers_lost_total", {"op": "sum"}
    )
    assert lost == 1

    (again,) = await api.claim(bot)
    assert (again["id"], again["attempt"]) == (job_id, 2)
    # The lost lease is fenced: its fail is refused, while the new lease holds.
    assert await _report(api, bot, job_id, "fail", 1, error="late") == 409
    assert (await api.job(job_id))["state"] == "running"
    # A complete is accepted from any attempt while the job is not terminal.
    assert await _report(api, bot, job_id, "complete", 1, result={"result": 3}) == 200
    view = await api.job(job_id)
    assert (view["state"], view["result"]) == ("succeeded", {"result": 3})
    attempts = await api.ctx.store.list_attempts(job_id)
    assert [(a.attempt, a.outcome) for a in attempts] == [(1, "lost"), (2, "cancelled")]


async def test_a_job_the_heartbeats_list_stays_with_its_bot(api: Api) -> None:
    bot = await api.register()
    job_id = await api.submit()
    await api.claim(bot)
    for _ in range(3):
        api.clock.advance(INTERVAL_S)
        status, data = await api.heartbeat(bot, running=[job_id])
        assert status == 200 and job_id in data["extended"], data
    view = await api.job(job_id)
    assert (view["state"], view["attempt"]) == ("running", 1)
    assert await _report(api, bot, job_id, "complete", 1, result={"result": 3}) == 200


async def test_a_finished_job_whose_report_waits_keeps_its_lease(api: Api) -> None:
    """The bot ran it, but its report is held up (in the outbox): the heartbeats name it
    in `unreported`, so it is neither taken for a lost answer nor let lapse."""
    bot = await api.register()
    job_id = await api.submit()
    await api.claim(bot)
    for _ in range(8):  # 240 s: past the 180 s job lease too
        api.clock.advance(INTERVAL_S)
        status, data = await api.heartbeat(bot, unreported=[job_id])
        assert status == 200 and job_id in data["extended"], data
    await api.ctx.reaper.run_once()
    view = await api.job(job_id)
    assert (view["state"], view["attempt"]) == ("running", 1)
    assert await _report(api, bot, job_id, "complete", 1, result={"result": 3}) == 200
    assert (await api.job(job_id))["state"] == "succeeded"
