"""The Bot end to end against the in-memory coordinator: lifecycle, heartbeat, commands, stop."""

from __future__ import annotations

import asyncio
import errno
import logging
from pathlib import Path

import pytest

from bot.agent.lifecycle import WORK_STATES
from bot.errors import AuthError, NetworkError, NotFoundError, OverloadedError
from bot.jobs import Registry, load_plugins
from bot.machine import EXIT_BAD_SETTINGS, EXIT_OK, EXIT_SAFE_HALT, EXIT_STOPPED_HARD
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


class TestRunAndStop:
    async def test_registers_runs_jobs_and_shuts_down_cleanly(self, start_bot: StartBot) -> None:
        fake = FakeCoordinator(features=[m.FEATURE_DEREGISTER])
        ids = [fake.add_job("sum", {"a": n, "b": 10}) for n in range(6)]
        running = start_bot(fake)

        await fake.wait_finished(6)
        assert [fake.jobs[i].result for i in ids] == [{"result": n + 10} for n in range(6)]
        assert await running.stop() == EXIT_OK

        bot = running.bot
        assert bot.state is S.SHUTDOWN
        history = bot.lifecycle.history
        assert history[:4] == [S.BOOTSTRAP, S.REGISTER, S.SYNC, S.IDLE]
        assert history[-2:] == [S.DRAINING, S.SHUTDOWN]
        assert fake.deregistered
        register = fake.requests("register")[0]
        assert register.constraints == {"max_concurrency": 2}
        assert register.labels == {}
        assert register.capabilities == ["subtract", "sum"]
        assert fake.token == "token-1"

    async def test_registration_retries_with_backoff(self, start_bot: StartBot) -> None:
        fake = FakeCoordinator()
        fake.fail_next(
            "register",
            NetworkError("refused"),
            OverloadedError(503, "busy", retry_after_s=2.0),
            NetworkError("refused"),
        )
        running = start_bot(fake, min_backoff_ms=100, max_backoff_ms=1000)

        await asyncio.wait_for(fake.registered.wait(), 30)
        await running.bot.lifecycle.wait_for({S.IDLE, S.CLAIM})

        assert fake.count("register") == 4
        history = running.bot.lifecycle.history
        assert history.count(S.BACKOFF) == 3 and history.count(S.REGISTER) == 4
        backoffs = running.clock.slept[:3]
        assert 0.1 <= backoffs[0] <= 0.1 + 1e-9  # first retry: min backoff
        assert backoffs[1] >= 2.0  # Retry-After is honoured
        assert 0.1 <= backoffs[2] <= 0.4  # ceiling min * 2**2
        assert await running.stop() == EXIT_OK

    async def test_stop_while_registering_exits_cleanly(self, start_bot: StartBot) -> None:
        fake = FakeCoordinator()
        fake.fail_next("register", *(NetworkError("down") for _ in range(1000)))
        running = start_bot(fake)
        await running.bot.lifecycle.wait_for({S.BACKOFF})

        assert await running.stop() == EXIT_OK
        assert running.bot.state is S.SHUTDOWN

    @pytest.mark.parametrize(
        "refusal", [AuthError(401, "bad enrollment token"), NotFoundError(404, "no")]
    )
    async def test_refused_registration_halts(
        self, start_bot: StartBot, refusal: Exception
    ) -> None:
        fake = FakeCoordinator()
        fake.fail_next("register", refusal)
        running = start_bot(fake)

        assert await running.exit_code() == EXIT_SAFE_HALT
        assert running.bot.state is S.SAFE_HALT

    async def test_plugin_module_that_does_not_import_is_a_bad_setting(
        self, start_bot: StartBot, caplog: pytest.LogCaptureFixture
    ) -> None:
        running = start_bot(FakeCoordinator(), plugins=("no_such_plugin_module",))

        assert await running.exit_code() == EXIT_BAD_SETTINGS
        assert "BOT_PLUGINS" in caplog.text and "no_such_plugin_module" in caplog.text

    async def test_empty_registry_is_a_bad_setting(self, start_bot: StartBot) -> None:
        running = start_bot(FakeCoordinator(), bot_options={"registry": Registry()})
        assert await running.exit_code() == EXIT_BAD_SETTINGS

    async def test_unusable_state_dir_halts(self, start_bot: StartBot, tmp_path: Path) -> None:
        blocker = tmp_path / "file"
        blocker.write_text("not a folder")
        running = start_bot(FakeCoordinator(), state_dir=blocker / "state")
        assert await running.exit_code() == EXIT_SAFE_HALT

    async def test_stop_before_run_is_safe(self, start_bot: StartBot) -> None:
        fake = FakeCoordinator()
        running = start_bot(fake)
        running.bot.request_stop("early")
        assert await running.exit_code() == EXIT_OK
        assert running.bot.state is BotState.SHUTDOWN and fake.count("register") == 0


class TestDrainAndHardStop:
    async def test_drain_finishes_running_jobs_before_leaving(self, start_bot: StartBot) -> None:
        release = asyncio.Event()

        async def slow(job: Job) -> dict[str, bool]:
            await release.wait()
            return {"done": True}

        fake = FakeCoordinator(features=[m.FEATURE_DEREGISTER])
        job_id = fake.add_job("slow")
        running = start_bot(fake, bot_options={"registry": registry_with("slow", slow)})
        await eventually(lambda: runs(running.bot, job_id), "job started")

        running.bot.request_stop("signal")
        await running.bot.lifecycle.wait_for({S.DRAINING})
        fake.add_job("sum", {"a": 1, "b": 1})  # must not be claimed any more
        claims = fake.count("claim")
        release.set()

        assert await running.exit_code() == EXIT_OK
        assert fake.jobs[job_id].result == {"done": True}
        assert fake.count("claim") == claims and len(fake.queue) == 1
        assert fake.deregistered

    async def test_second_stop_is_hard_and_keeps_finished_reports(
        self, start_bot: StartBot, state_dir: Path
    ) -> None:
        async def forever(job: Job) -> dict[str, bool]:
            await asyncio.Event().wait()
            return {}

        fake = FakeCoordinator()
        done_id = fake.add_job("sum", {"a": 2, "b": 3})
        stuck_id = fake.add_job("forever")
        fake.fail_next("complete", *(NetworkError("down") for _ in range(1000)))
        running = start_bot(fake, bot_options={"registry": registry_with("forever", forever)})
        await eventually(lambda: fake.count("complete") >= 1, "the sum job reported once")
        await eventually(lambda: len(running.bot.outbox) == 1, "its report kept")

        running.bot.request_stop("first")
        await running.bot.lifecycle.wait_for({S.DRAINING})
        running.bot.request_stop("second")

        assert await running.exit_code() == EXIT_STOPPED_HARD
        assert fake.jobs[stuck_id].state == "running"  # abandoned: its lease will run out
        with Outbox(state_dir) as outbox:
            assert [(i.job_id, i.result) for i in outbox.pending()] == [(done_id, {"result": 5})]

    async def test_coordinator_drain_command(self, start_bot: StartBot) -> None:
        fake = FakeCoordinator(features=[m.FEATURE_DEREGISTER])
        fake.heartbeat_answers.append(m.HeartbeatResponse(command="drain"))
        running = start_bot(fake, heartbeat_interval_s=1.0)

        assert await running.exit_code() == EXIT_OK
        assert S.DRAINING in running.bot.lifecycle.history
        assert fake.deregistered


class TestHeartbeat:
    async def test_heartbeat_lists_running_jobs_with_state(self, start_bot: StartBot) -> None:
        release = asyncio.Event()

        async def slow(job: Job) -> dict[str, bool]:
            job.progress(0.5, "half")
            await release.wait()
            return {}

        fake = FakeCoordinator()
        job_id = fake.add_job("slow")
        running = start_bot(
            fake, heartbeat_interval_s=1.0, bot_options={"registry": registry_with("slow", slow)}
        )
        await eventually(
            lambda: any(r.running for r in fake.requests("heartbeat")), "a heartbeat with a job"
        )
        beat = next(r for r in fake.requests("heartbeat") if r.running)
        assert running.bot.session is not None
        assert beat.instance_id == running.bot.session.instance_id
        assert beat.state == "process"
        (listed,) = beat.running
        assert (listed.job_id, listed.op, listed.progress) == (job_id, "slow", 0.5)
        assert listed.elapsed_ms >= 0
        release.set()
        assert await running.stop() == EXIT_OK

    async def test_cancel_fails_the_job_for_good(self, start_bot: StartBot) -> None:
        async def forever(job: Job) -> dict[str, bool]:
            await asyncio.Event().wait()
            return {}

        fake = FakeCoordinator()
        job_id = fake.add_job("forever")
        running = start_bot(
            fake,
            heartbeat_interval_s=1.0,
            bot_options={"registry": registry_with("forever", forever)},
        )
        await eventually(lambda: runs(running.bot, job_id), "job started")
        fake.heartbeat_answers.append(m.HeartbeatResponse(cancel=[job_id, "job_elsewhere"]))

        await fake.wait_finished(1)
        job = fake.jobs[job_id]
        assert (job.state, job.error, job.retryable) == ("failed", "cancelled", False)
        assert await running.stop() == EXIT_OK

    @pytest.mark.parametrize(
        "refusal", [NotFoundError(404, "unknown bot"), AuthError(401, "expired")]
    )
    async def test_heartbeat_refusal_registers_again(
        self, start_bot: StartBot, refusal: Exception
    ) -> None:
        fake = FakeCoordinator()
        fake.fail_next("heartbeat", refusal)
        running = start_bot(fake, heartbeat_interval_s=1.0)

        await eventually(lambda: fake.count("register") == 2, "registered again")
        await eventually(lambda: fake.count("heartbeat") >= 2, "heartbeats go on")
        first, second = fake.requests("register")
        assert first.instance_id == second.instance_id  # same process: same bot_id back
        fake.add_job("sum", {"a": 1, "b": 1})
        await fake.wait_finished(1)
        assert await running.stop() == EXIT_OK

    async def test_unreachable_coordinator_degrades_then_recovers(
        self, start_bot: StartBot
    ) -> None:
        fake = FakeCoordinator()
        running = start_bot(fake, heartbeat_interval_s=1.0)
        await running.bot.lifecycle.wait_for(WORK_STATES)
        fake.unreachable = True
        await running.bot.lifecycle.wait_for({S.DEGRADED_NET})
        job_id = fake.add_job("sum", {"a": 4, "b": 4})  # not claimed while degraded
        claims = fake.count("claim")
        await eventually(lambda: fake.count("heartbeat") >= 6, "probes go on")
        assert fake.count("claim") == claims
        fake.unreachable = False

        await fake.wait_finished(1)
        assert fake.jobs[job_id].result == {"result": 8}
        history = running.bot.lifecycle.history
        back = history.index(S.DEGRADED_NET) + 1
        assert history[back] is S.SYNC  # back through SYNC
        assert await running.stop() == EXIT_OK

    async def test_assignment_changes_apply_live(self, start_bot: StartBot) -> None:
        fake = FakeCoordinator()
        fake.heartbeat_answers.append(
            m.HeartbeatResponse(
                assignment=m.Assignment(operations=["sum"], max_concurrency=4, paused=True),
                config=m.BotConfig(heartbeat_interval=2.0, claim_batch_size=3),
            )
        )
        running = start_bot(fake, heartbeat_interval_s=1.0)
        bot = running.bot
        await bot.lifecycle.wait_for(WORK_STATES)
        scheduler, session = bot.scheduler, bot.session
        assert scheduler is not None and session is not None
        await eventually(lambda: scheduler.slots.capacity == 4, "resized")
        assert session.heartbeat_interval_s == 2.0
        claims = fake.count("claim")
        fake.add_job("sum", {"a": 1, "b": 2})
        await eventually(lambda: fake.count("heartbeat") >= 3, "more heartbeats")
        assert fake.count("claim") == claims  # paused

        fake.heartbeat_answers.append(
            m.HeartbeatResponse(assignment=m.Assignment(max_concurrency=4, paused=False))
        )
        await fake.wait_finished(1)
        assert fake.requests("claim")[-1].limit == 3
        assert await running.stop() == EXIT_OK

    async def test_quarantine_and_release(self, start_bot: StartBot) -> None:
        fake = FakeCoordinator()
        fake.heartbeat_answers.append(m.HeartbeatResponse(command="quarantine"))
        running = start_bot(fake, heartbeat_interval_s=1.0)
        await running.bot.lifecycle.wait_for({S.QUARANTINED})
        job_id = fake.add_job("sum", {"a": 1, "b": 2})
        beats = fake.count("heartbeat")
        await eventually(lambda: fake.count("heartbeat") >= beats + 2, "heartbeats go on")
        assert fake.jobs[job_id].state == "queued"
        assert fake.requests("heartbeat")[-1].state == "quarantined"

        fake.heartbeat_answers.append(m.HeartbeatResponse(command="release"))
        await fake.wait_finished(1)
        assert await running.stop() == EXIT_OK


class TestExtensions:
    async def test_batch_report_long_poll_and_progress_when_offered(
        self, start_bot: StartBot
    ) -> None:
        release = asyncio.Event()

        async def chatty(job: Job) -> dict[str, bool]:
            job.progress(0.25, "a quarter")
            await release.wait()
            return {"ok": True}

        fake = FakeCoordinator(
            features=[m.FEATURE_BATCH_REPORT, m.FEATURE_LONG_POLL, m.FEATURE_PROGRESS]
        )
        for _ in range(2):
            fake.add_job("chatty")
        running = start_bot(
            fake, long_poll_ms=5000, bot_options={"registry": registry_with("chatty", chatty)}
        )

        await eventually(lambda: fake.count("progress") >= 2, "progress sent")
        assert {r.progress for r in fake.requests("progress")} == {0.25}
        assert {r.message for r in fake.requests("progress")} == {"a quarter"}
        release.set()
        await fake.wait_finished(2)
        assert fake.count("complete") == 0 and fake.count("report_batch") >= 1
        assert {r.wait_ms for r in fake.requests("claim")} == {5000}
        assert await running.stop() == EXIT_OK

    async def test_base_calls_only_without_features(self, start_bot: StartBot) -> None:
        fake = FakeCoordinator()
        fake.add_job("sum", {"a": 1, "b": 2})
        running = start_bot(fake)

        await fake.wait_finished(1)
        assert await running.stop() == EXIT_OK
        assert fake.count("report_batch") == fake.count("progress") == 0
        assert fake.count("deregister") == 0
        assert {r.wait_ms for r in fake.requests("claim")} == {0}


class TestPipeline:
    async def test_a_freed_slot_is_refilled_while_others_run(self, start_bot: StartBot) -> None:
        release = asyncio.Event()

        async def slow(job: Job) -> dict[str, bool]:
            await release.wait()
            return {}

        registry = registry_with("slow", slow)
        fake = FakeCoordinator()
        slow_id = fake.add_job("slow")
        quick = [fake.add_job("sum", {"a": n, "b": 0}) for n in range(5)]
        running = start_bot(fake, bot_options={"registry": registry})

        # With 2 slots and one held by `slow`, all quick jobs run one after another.
        await eventually(lambda: all(fake.jobs[q].state == "succeeded" for q in quick), "quick")
        assert fake.jobs[slow_id].state == "running"
        release.set()
        await fake.wait_finished(6)
        assert await running.stop() == EXIT_OK

    async def test_empty_claims_back_off_instead_of_spinning(self, start_bot: StartBot) -> None:
        fake = FakeCoordinator()
        running = start_bot(fake, min_backoff_ms=500, max_backoff_ms=60_000)
        await eventually(lambda: fake.count("claim") >= 8, "several empty claims")
        assert await running.stop() == EXIT_OK

        claims = fake.count("claim")
        waits = [s for s in running.clock.slept if 0.5 <= s <= 5.0]
        assert len(waits) >= claims - 1  # a backoff wait after every empty claim
        assert max(waits) > 2.0  # and the waits grow towards the idle cap


class TestSafeHalt:
    async def test_full_outbox_halts_after_draining(
        self, start_bot: StartBot, caplog: pytest.LogCaptureFixture
    ) -> None:
        fake = FakeCoordinator()
        fake.fail_next("complete", *(NetworkError("down") for _ in range(1000)))
        disk = FailingDisk()
        running = start_bot(fake, bot_options={"disk": disk})
        await running.bot.lifecycle.wait_for({S.IDLE, S.CLAIM})
        disk.append_errno = errno.ENOSPC
        caplog.set_level(logging.ERROR)
        fake.add_job("sum", {"a": 1, "b": 2})

        assert await running.exit_code() == EXIT_SAFE_HALT
        assert running.bot.state is S.SAFE_HALT
        assert "disk full" in caplog.text and "report lost" in caplog.text
