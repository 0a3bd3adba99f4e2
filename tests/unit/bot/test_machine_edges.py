"""The Bot's less travelled paths: crashes, refusals while draining, concurrent renewals."""

from __future__ import annotations

import asyncio
import errno
import logging
from pathlib import Path

import pytest

from bot.agent.lifecycle import WORK_STATES
from bot.errors import AuthError, NetworkError, NotFoundError, OverloadedError
from bot.jobs import Registry, load_plugins
from bot.machine import EXIT_OK, EXIT_SAFE_HALT, EXIT_STOPPED_HARD
from bot.reports.outbox import Outbox
from bot.state import BotState, Job
from bot.testing import FailingDisk, FakeCoordinator
from botfleet.protocol import messages as m

from .conftest import StartBot, eventually, runs

S = BotState


def registry_with(name: str, handler: object) -> Registry:
    registry = load_plugins(Registry(), entry_points=())
    registry.register(name, handler)  # type: ignore[arg-type]
    return registry


def blocking_registry() -> tuple[Registry, asyncio.Event]:
    release = asyncio.Event()

    async def slow(job: Job) -> dict[str, bool]:
        await release.wait()
        return {"done": True}

    return registry_with("slow", slow), release


async def test_a_crashed_side_task_halts_safely(
    start_bot: StartBot, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeCoordinator()
    fake.fail_next("heartbeat", RuntimeError("bug in the heartbeat"))
    running = start_bot(fake, heartbeat_interval_s=1.0)

    assert await running.exit_code() == EXIT_SAFE_HALT
    assert running.bot.state is S.SAFE_HALT
    assert "task heartbeat crashed" in caplog.text


async def test_refusal_while_draining_registers_again_quietly(start_bot: StartBot) -> None:
    registry, release = blocking_registry()
    fake = FakeCoordinator()
    job_id = fake.add_job("slow")
    running = start_bot(fake, heartbeat_interval_s=1.0, bot_options={"registry": registry})
    await eventually(lambda: runs(running.bot, job_id), "job started")
    running.bot.request_stop("test")
    await running.bot.lifecycle.wait_for({S.DRAINING})
    beats = fake.count("heartbeat")
    fake.fail_next("heartbeat", NotFoundError(404, "forgotten"))

    await eventually(lambda: fake.count("register") == 2, "registered again")
    await eventually(lambda: fake.count("heartbeat") > beats + 1, "heartbeats go on")
    release.set()
    assert await running.exit_code() == EXIT_OK
    history = running.bot.lifecycle.history
    assert history[history.index(S.DRAINING) :] == [S.DRAINING, S.SHUTDOWN]
    assert fake.jobs[job_id].result == {"done": True}


async def test_concurrent_refusals_register_once(start_bot: StartBot) -> None:
    fake = FakeCoordinator()
    running = start_bot(fake, heartbeat_interval_s=1.0)
    await running.bot.lifecycle.wait_for(WORK_STATES)
    gate = fake.gates["register"] = asyncio.Event()
    claims = fake.count("claim")
    fake.fail_next("claim", NotFoundError(404, "forgotten"))
    fake.fail_next("heartbeat", NotFoundError(404, "forgotten"))
    await eventually(lambda: fake.count("register") == 2, "one renewal under way")
    await eventually(lambda: fake.count("claim") > claims, "the claim refused too")
    await eventually(lambda: fake.count("heartbeat") >= 1, "the heartbeat refused too")
    gate.set()

    fake.add_job("sum", {"a": 1, "b": 1})
    await fake.wait_finished(1)
    assert fake.count("register") == 2
    assert await running.stop() == EXIT_OK


async def test_refused_renewal_halts(start_bot: StartBot) -> None:
    fake = FakeCoordinator()
    fake.fail_next("heartbeat", AuthError(401, "expired"))
    running = start_bot(fake, heartbeat_interval_s=1.0)
    await running.bot.lifecycle.wait_for(WORK_STATES)
    fake.fail_next("register", AuthError(401, "enrollment token revoked"))

    assert await running.exit_code() == EXIT_SAFE_HALT


async def test_stop_during_a_failing_renewal(start_bot: StartBot) -> None:
    fake = FakeCoordinator()
    running = start_bot(fake, heartbeat_interval_s=1.0)
    await running.bot.lifecycle.wait_for(WORK_STATES)
    fake.fail_next("register", *(NetworkError("down") for _ in range(1000)))
    fake.fail_next("heartbeat", NotFoundError(404, "forgotten"))
    await running.bot.lifecycle.wait_for({S.BACKOFF})

    assert await running.stop() == EXIT_OK
    assert running.bot.lifecycle.history[-2:] == [S.DRAINING, S.SHUTDOWN]


async def test_overloaded_heartbeat_waits_retry_after(start_bot: StartBot) -> None:
    fake = FakeCoordinator()
    fake.fail_next("heartbeat", OverloadedError(503, "busy", retry_after_s=0.8))
    running = start_bot(fake, heartbeat_interval_s=1.0)
    await eventually(lambda: fake.count("heartbeat") >= 2, "heartbeat retried")
    assert 0.8 in running.clock.slept
    # Load shedding is an answer: the coordinator is reachable, the circuit stays closed.
    assert S.DEGRADED_NET not in running.bot.lifecycle.history
    assert await running.stop() == EXIT_OK


async def test_rejected_heartbeat_is_retried_without_degrading(start_bot: StartBot) -> None:
    from bot.errors import RejectedError

    fake = FakeCoordinator()
    fake.fail_next("heartbeat", RejectedError(400, "bad field"))
    running = start_bot(fake, heartbeat_interval_s=1.0)
    await eventually(lambda: fake.count("heartbeat") >= 2, "heartbeat retried")
    assert S.DEGRADED_NET not in running.bot.lifecycle.history
    assert await running.stop() == EXIT_OK


async def test_hard_stop_while_a_claim_is_held(start_bot: StartBot) -> None:
    fake = FakeCoordinator()  # no deregister: the drain waits for the claim
    running = start_bot(fake)
    await running.bot.lifecycle.wait_for(WORK_STATES)
    gate = fake.gates["claim"] = asyncio.Event()
    claims = fake.count("claim")
    await eventually(lambda: fake.count("claim") > claims, "a claim held")
    running.bot.request_stop("first")
    await running.bot.lifecycle.wait_for({S.DRAINING})
    running.bot.request_stop("second")

    assert await running.exit_code() == EXIT_STOPPED_HARD
    gate.set()


async def test_hard_stop_while_reports_are_delivered(start_bot: StartBot, state_dir: Path) -> None:
    fake = FakeCoordinator()
    job_id = fake.add_job("sum", {"a": 1, "b": 1})
    gate = fake.gates["complete"] = asyncio.Event()
    running = start_bot(fake)
    await eventually(lambda: fake.count("complete") == 1, "delivery under way")
    running.bot.request_stop("first")
    await running.bot.lifecycle.wait_for({S.DRAINING})
    running.bot.request_stop("second")

    assert await running.exit_code() == EXIT_STOPPED_HARD
    gate.set()
    with Outbox(state_dir) as outbox:
        assert [i.job_id for i in outbox.pending()] == [job_id]


async def test_outbox_failures_at_sync_and_at_the_end(
    start_bot: StartBot, state_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Outbox(state_dir) as outbox:
        outbox.append([m.ReportItem(job_id="job_old", action="complete", result={})])
    fake = FakeCoordinator(features=[m.FEATURE_DEREGISTER])
    fake.fail_next("deregister", NetworkError("down"))
    gate = fake.gates["register"] = asyncio.Event()
    disk = FailingDisk()
    running = start_bot(fake, bot_options={"disk": disk})
    await eventually(lambda: fake.count("register") == 1, "bootstrap done")
    disk.rewrite_errno = errno.EROFS  # the disk turns read-only before the outbox is flushed
    gate.set()

    assert await running.exit_code() == EXIT_SAFE_HALT
    assert "cannot rewrite" in caplog.text and "deregister failed" in caplog.text


async def test_bot_stored_outbox_is_delivered_at_sync(start_bot: StartBot, state_dir: Path) -> None:
    fake = FakeCoordinator()
    job_id = fake.add_job("sum")
    await fake.claim(m.ClaimRequest(bot_id=fake.bot_id, operations=["sum"]))
    with Outbox(state_dir) as outbox:
        outbox.append(
            [m.ReportItem(job_id=job_id, attempt=1, action="complete", result={"result": 9})]
        )
    running = start_bot(fake)
    await fake.wait_finished(1)
    assert fake.jobs[job_id].result == {"result": 9}
    assert await running.stop() == EXIT_OK


async def test_commands_in_other_states(
    start_bot: StartBot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    fake = FakeCoordinator()
    fake.heartbeat_answers += [
        m.HeartbeatResponse(command="release"),  # not quarantined: nothing to do
        m.HeartbeatResponse(command="quarantine"),
        m.HeartbeatResponse(command="quarantine"),  # again: nothing new
        m.HeartbeatResponse(cancel=["job_not_here"]),
    ]
    running = start_bot(fake, heartbeat_interval_s=1.0)
    await eventually(lambda: fake.count("heartbeat") >= 5, "heartbeats")
    history = running.bot.lifecycle.history
    assert history.count(S.QUARANTINED) == 1
    assert await running.stop() == EXIT_OK


async def test_drain_while_a_renewal_is_on_its_way(start_bot: StartBot) -> None:
    fake = FakeCoordinator()
    running = start_bot(fake, heartbeat_interval_s=1.0)
    await running.bot.lifecycle.wait_for(WORK_STATES)
    gate = fake.gates["register"] = asyncio.Event()
    fake.fail_next("heartbeat", NotFoundError(404, "forgotten"))
    await eventually(lambda: fake.count("register") == 2, "renewal under way")
    assert running.bot.state is S.REGISTER

    running.bot.request_stop("test")
    await running.bot.lifecycle.wait_for({S.DRAINING})
    gate.set()

    assert await running.exit_code() == EXIT_OK
    history = running.bot.lifecycle.history
    assert history[-3:] == [S.REGISTER, S.DRAINING, S.SHUTDOWN]


class LosingRideCoordinator(FakeCoordinator):
    """Claims carrying reports are lost on the network, `losses` times."""

    def __init__(self, losses: int) -> None:
        super().__init__(features=[m.FEATURE_BATCH_REPORT, m.FEATURE_REPORT_ON_CLAIM])
        self.losses = losses

    async def claim(self, request: m.ClaimRequest) -> m.ClaimResponse:
        if request.reports and self.losses:
            self.losses -= 1
            await self._enter("claim", request)  # recorded; held while the gate is shut
            raise NetworkError("connection reset")
        return await super().claim(request)


async def test_reports_on_a_lost_claim_are_delivered_alone(start_bot: StartBot) -> None:
    """While reports ride on a claim the bot shows REPORT; the claim lost, they go back to
    the report loop and the bot goes on (no invalid move, nothing lost, nothing twice)."""
    registry, release = blocking_registry()
    fake = LosingRideCoordinator(losses=3)
    ids = [fake.add_job("slow") for _ in range(2)]  # both slots taken: the claim loop waits
    ids += [fake.add_job("sum", {"a": n, "b": 1}) for n in range(6)]
    running = start_bot(
        fake,
        heartbeat_interval_s=1.0,
        circuit_threshold=100,
        bot_options={"registry": registry},
    )
    await eventually(lambda: all(runs(running.bot, job_id) for job_id in ids[:2]), "slots full")
    gate = fake.gates["claim"] = asyncio.Event()
    release.set()
    await eventually(lambda: any(r.reports for r in fake.requests("claim")), "reports ride")
    scheduler = running.bot.scheduler
    assert scheduler is not None
    # Meanwhile another report goes alone: the bot still shows REPORT for the riders.
    scheduler.reporting.queue(m.ReportItem(job_id="job_unknown", action="complete", result={}))
    await eventually(lambda: fake.count("report_batch") >= 1, "a report went alone")
    assert running.bot.state is S.REPORT
    # Their jobs keep their leases: the heartbeats name them until the reports land.
    riders = {item.job_id for r in fake.requests("claim") if r.reports for item in r.reports}
    await eventually(
        lambda: any(riders <= set(h.unreported or ()) for h in fake.requests("heartbeat")),
        "heartbeats name the reports on their way",
    )
    gate.set()

    await fake.wait_finished(len(ids))
    assert all(fake.jobs[job_id].state == "succeeded" for job_id in ids)
    assert fake.losses == 0 and not running.task.done()
    assert S.REPORT in running.bot.lifecycle.history
    await eventually(lambda: not scheduler.reporting.unreported(), "every report confirmed")
    assert scheduler.reporter.counts.accepted == len(ids) and len(scheduler.outbox) == 0
    assert scheduler.reporter.counts.dropped == 1  # job_unknown
    running.bot.request_stop("test")
    assert await running.exit_code() == EXIT_OK
