"""The Bot under trouble, against the fake coordinator: drain grace, halts, identity,
token renewal, quarantine, watchdogs, the open circuit, thread handlers, live assignment."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from pathlib import Path

import pytest

from bot.agent.quarantine import QUARANTINE_FILE
from bot.errors import ConflictError, PluginError
from bot.identity import IDENTITY_FILE
from bot.jobs import Registry, load_plugins
from bot.machine import EXIT_OK, EXIT_RESTART, EXIT_SAFE_HALT
from bot.reports.outbox import OUTBOX_FILE, Outbox
from bot.state import BotState, Job
from bot.testing import FakeCoordinator
from bot.work.threads import ABANDONED_LIMIT
from botfleet.protocol import messages as m

from .conftest import StartBot, eventually, runs

S = BotState


def registry_with(**handlers: object) -> Registry:
    registry = load_plugins(Registry(), entry_points=())
    for name, handler in handlers.items():
        registry.register(name, handler)  # type: ignore[arg-type]
    return registry


def blocking() -> tuple[Registry, asyncio.Event]:
    release = asyncio.Event()

    async def slow(job: Job) -> dict[str, bool]:
        await release.wait()
        return {"done": True}

    return registry_with(slow=slow), release


def critical_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]


class TestDrain:
    async def test_grace_over_cancels_what_is_left_and_hands_it_back(
        self, start_bot: StartBot, caplog: pytest.LogCaptureFixture
    ) -> None:
        registry, _ = blocking()
        fake = FakeCoordinator(features=[m.FEATURE_DEREGISTER])
        ids = [fake.add_job("slow"), fake.add_job("slow")]
        running = start_bot(fake, drain_grace_s=5.0, bot_options={"registry": registry})
        await eventually(lambda: all(runs(running.bot, i) for i in ids), "both jobs running")

        running.bot.request_stop("SIGTERM")

        assert await running.exit_code() == EXIT_OK
        for job_id in ids:
            job = fake.jobs[job_id]
            assert (job.state, job.retryable) == ("failed", True)
            assert "drain grace of 5 s" in (job.error or "")
        assert fake.deregistered and len(running.bot.outbox) == 0
        assert "drain grace of 5 s ran out: 2 job(s) cancelled" in caplog.text

    async def test_a_job_that_ignores_its_cancellation_is_abandoned(
        self, start_bot: StartBot, caplog: pytest.LogCaptureFixture
    ) -> None:
        release = asyncio.Event()

        async def stubborn(job: Job) -> dict[str, bool]:
            while not release.is_set():
                try:
                    await release.wait()
                except asyncio.CancelledError:
                    continue  # a handler that swallows cancellation (a bug)
            return {}

        fake = FakeCoordinator(features=[m.FEATURE_DEREGISTER])
        job_id = fake.add_job("stubborn")
        running = start_bot(
            fake,
            drain_grace_s=1.0,
            cancel_wait_s=1.0,
            bot_options={"registry": registry_with(stubborn=stubborn)},
        )
        await eventually(lambda: runs(running.bot, job_id), "job running")
        running.bot.request_stop("SIGTERM")

        assert await running.exit_code() == EXIT_OK
        assert "ignored their cancellation; abandoned" in caplog.text
        assert fake.deregistered  # the coordinator requeues what the bot still held
        release.set()

    async def test_the_last_heartbeat_shows_the_final_state(self, start_bot: StartBot) -> None:
        fake = FakeCoordinator(features=[m.FEATURE_DEREGISTER])
        running = start_bot(fake)
        await running.bot.lifecycle.wait_for({S.IDLE, S.CLAIM})

        assert await running.stop() == EXIT_OK
        names = [name for name, _ in fake.calls if name in ("heartbeat", "deregister")]
        assert names[-2:] == ["heartbeat", "deregister"]
        assert fake.requests("heartbeat")[-1].state == "shutdown"

    async def test_no_goodbye_while_the_coordinator_is_unreachable(
        self, start_bot: StartBot
    ) -> None:
        fake = FakeCoordinator(features=[m.FEATURE_DEREGISTER])
        running = start_bot(fake)
        await running.bot.lifecycle.wait_for({S.IDLE, S.CLAIM})
        fake.unreachable = True
        await running.bot.lifecycle.wait_for({S.DEGRADED_NET})
        calls = len(fake.calls)

        assert await running.stop() == EXIT_OK
        assert fake.count("deregister") == 0
        assert all(name == "heartbeat" for name, _ in fake.calls[calls:])  # probes only


class TestSafeHalt:
    async def test_outbox_gone_halts_at_once_and_says_what_to_do(
        self, start_bot: StartBot, state_dir: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        registry, release = blocking()
        fake = FakeCoordinator(features=[m.FEATURE_DEREGISTER])
        job_id = fake.add_job("slow")
        running = start_bot(fake, bot_options={"registry": registry})
        await eventually(lambda: runs(running.bot, job_id), "job running")

        (state_dir / OUTBOX_FILE).unlink()

        assert await running.exit_code() == EXIT_SAFE_HALT
        assert running.bot.state is S.SAFE_HALT
        assert fake.jobs[job_id].state == "running"  # abandoned: deregister requeues it
        assert fake.deregistered and fake.requests("heartbeat")[-1].state == "safe_halt"
        (line,) = critical_lines(caplog)
        assert line.startswith("SAFE_HALT: the outbox cannot keep reports: ")
        assert f"Make BOT_STATE_DIR ({state_dir}) a writable folder" in line
        release.set()

    async def test_finished_reports_are_still_delivered(
        self, start_bot: StartBot, state_dir: Path
    ) -> None:
        fake = FakeCoordinator()
        gate = fake.gates["complete"] = asyncio.Event()
        job_id = fake.add_job("sum", {"a": 1, "b": 2})
        running = start_bot(fake)
        await eventually(lambda: fake.count("complete") == 1, "the report on its way")
        (state_dir / OUTBOX_FILE).unlink()
        await eventually(lambda: running.bot.state is S.SAFE_HALT, "halted")
        gate.set()

        assert await running.exit_code() == EXIT_SAFE_HALT
        assert fake.jobs[job_id].result == {"result": 3}

    async def test_another_process_with_this_identity_halts(
        self, start_bot: StartBot, caplog: pytest.LogCaptureFixture
    ) -> None:
        fake = FakeCoordinator()
        fake.fail_next(
            "heartbeat",
            ConflictError(409, "bot is now instance inst_2", code="instance_replaced"),
        )
        running = start_bot(fake, heartbeat_interval_s=1.0)

        assert await running.exit_code() == EXIT_SAFE_HALT
        (line,) = critical_lines(caplog)
        assert "identity cannot be kept" in line and "BOT_NAME" in line

    async def test_other_conflicts_on_heartbeat_are_retried(self, start_bot: StartBot) -> None:
        fake = FakeCoordinator()
        fake.fail_next("heartbeat", ConflictError(409, "something else"))
        running = start_bot(fake, heartbeat_interval_s=1.0)
        await eventually(lambda: fake.count("heartbeat") >= 3, "heartbeats go on")
        assert await running.stop() == EXIT_OK

    async def test_identity_file_taken_over_halts(
        self, start_bot: StartBot, state_dir: Path
    ) -> None:
        fake = FakeCoordinator()
        running = start_bot(fake, heartbeat_interval_s=1.0)
        await running.bot.lifecycle.wait_for({S.IDLE, S.CLAIM})
        path = state_dir / IDENTITY_FILE
        stored = json.loads(path.read_text())
        path.write_text(json.dumps({**stored, "instance_id": "inst_someone_else"}))

        assert await running.exit_code() == EXIT_SAFE_HALT


class TestRenewal:
    async def test_the_token_is_renewed_before_it_expires(self, start_bot: StartBot) -> None:
        fake = FakeCoordinator()
        fake.expires_in = 100  # renewed at 80 s: 0.8 s on the scaled clock
        running = start_bot(fake, heartbeat_interval_s=30.0, bot_lease_ttl_s=120.0)

        await eventually(lambda: fake.count("register") >= 3, "renewed twice")
        first, second = fake.requests("register")[:2]
        assert first.instance_id == second.instance_id
        history = running.bot.lifecycle.history
        assert history.count(S.SYNC) >= 3
        assert await running.stop() == EXIT_OK


class TestQuarantine:
    async def test_a_crash_loop_quarantines_until_released(
        self, start_bot: StartBot, state_dir: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        async def crash(job: Job) -> None:
            raise RuntimeError("handler bug")

        async def invalid(job: Job) -> None:
            raise PluginError("bad payload")  # the job's fault, not a crash

        fake = FakeCoordinator()
        for _ in range(3):
            fake.add_job("invalid")
        for _ in range(3):
            fake.add_job("crash")
        running = start_bot(
            fake,
            crash_loop_limit=3,
            heartbeat_interval_s=1.0,
            bot_options={"registry": registry_with(crash=crash, invalid=invalid)},
        )
        await running.bot.lifecycle.wait_for({S.QUARANTINED})
        assert "crash loop: the handler of 'crash' failed 3 times in a row" in caplog.text
        assert (state_dir / QUARANTINE_FILE).exists()
        waiting = fake.add_job("sum", {"a": 1, "b": 1})
        await eventually(
            lambda: [r.state for r in fake.requests("heartbeat")][-1:] == ["quarantined"],
            "the heartbeat says so",
        )
        assert fake.jobs[waiting].state == "queued"

        fake.heartbeat_answers.append(m.HeartbeatResponse(command="release"))
        await eventually(lambda: fake.jobs[waiting].state == "succeeded", "work resumed")
        assert not (state_dir / QUARANTINE_FILE).exists()
        assert await running.stop() == EXIT_OK

    async def test_a_quarantine_outlives_a_restart(self, start_bot: StartBot) -> None:
        fake = FakeCoordinator()
        fake.heartbeat_answers.append(m.HeartbeatResponse(command="quarantine"))
        first = start_bot(fake, heartbeat_interval_s=1.0)
        await first.bot.lifecycle.wait_for({S.QUARANTINED})
        assert await first.stop() == EXIT_OK

        job_id = fake.add_job("sum", {"a": 2, "b": 2})
        second = start_bot(fake, heartbeat_interval_s=1.0)
        await second.bot.lifecycle.wait_for({S.QUARANTINED})
        assert second.bot.lifecycle.history[:4] == [S.BOOTSTRAP, S.REGISTER, S.SYNC, S.QUARANTINED]
        assert fake.jobs[job_id].state == "queued"
        fake.heartbeat_answers.append(m.HeartbeatResponse(command="release"))
        await fake.wait_finished(1)
        assert await second.stop() == EXIT_OK


class TestWatchdog:
    async def test_a_report_that_never_returns_goes_to_the_outbox(
        self, start_bot: StartBot, caplog: pytest.LogCaptureFixture
    ) -> None:
        fake = FakeCoordinator()
        gate = fake.gates["complete"] = asyncio.Event()
        job_id = fake.add_job("sum", {"a": 5, "b": 5})
        running = start_bot(fake, report_limit_s=5.0)

        await eventually(lambda: len(running.bot.outbox) == 1, "the report kept")
        assert running.bot.watchdog.expired == ["delivery of 1 report(s)"]
        assert "delivery of 1 report(s) still under way" in caplog.text
        gate.set()
        await fake.wait_finished(1)
        assert fake.jobs[job_id].result == {"result": 10}
        await eventually(lambda: len(running.bot.outbox) == 0, "the outbox emptied")
        assert await running.stop() == EXIT_OK

    async def test_a_stalled_loop_sends_a_heartbeat_at_once(
        self, start_bot: StartBot, caplog: pytest.LogCaptureFixture
    ) -> None:
        fake = FakeCoordinator()
        running = start_bot(fake, heartbeat_interval_s=3600.0, bot_lease_ttl_s=7200.0)
        await running.bot.lifecycle.wait_for({S.IDLE, S.CLAIM})
        beats = fake.count("heartbeat")

        running.bot.loop_lag.measured(5.0)

        await eventually(lambda: fake.count("heartbeat") > beats, "a heartbeat at once")
        assert "the event loop stalled for 5.0 s" in caplog.text
        assert await running.stop() == EXIT_OK


class TestOpenCircuit:
    async def test_reports_go_to_the_outbox_without_a_try(self, start_bot: StartBot) -> None:
        registry, release = blocking()
        fake = FakeCoordinator()
        job_id = fake.add_job("slow")
        running = start_bot(fake, bot_options={"registry": registry})
        await eventually(lambda: runs(running.bot, job_id), "job running")
        fake.unreachable = True
        await running.bot.lifecycle.wait_for({S.DEGRADED_NET})

        release.set()
        await eventually(lambda: len(running.bot.outbox) == 1, "the report kept")
        assert fake.count("complete") == 0  # no attempt while the circuit is open
        assert running.bot.state is S.DEGRADED_NET
        fake.unreachable = False

        await fake.wait_finished(1)
        assert fake.jobs[job_id].result == {"done": True}
        history = running.bot.lifecycle.history
        assert history[history.index(S.DEGRADED_NET) + 1] is S.SYNC
        assert await running.stop() == EXIT_OK

    async def test_progress_waits_for_the_coordinator(self, start_bot: StartBot) -> None:
        release = asyncio.Event()

        async def chatty(job: Job) -> dict[str, bool]:
            job.progress(0.5, "half")
            await release.wait()
            return {}

        fake = FakeCoordinator(features=[m.FEATURE_PROGRESS])
        fake.unreachable = True
        fake.add_job("chatty")
        running = start_bot(fake, bot_options={"registry": registry_with(chatty=chatty)})
        await eventually(lambda: fake.count("register") >= 3, "registration retried")
        assert fake.count("progress") == 0
        fake.unreachable = False
        await eventually(lambda: fake.count("progress") >= 1, "progress sent")
        release.set()
        await fake.wait_finished(1)
        assert await running.stop() == EXIT_OK


class TestThreadHandlers:
    async def test_a_timed_out_thread_gives_its_slot_back_at_once(
        self, start_bot: StartBot
    ) -> None:
        release = threading.Event()
        seen_cancelled: list[bool] = []

        def stuck(job: Job) -> dict[str, bool]:
            release.wait(30)
            seen_cancelled.append(job.cancelled())
            return {}

        fake = FakeCoordinator(assignment=m.Assignment(max_concurrency=1))
        stuck_id = fake.add_job("stuck", timeout_s=0.05)
        running = start_bot(fake, bot_options={"registry": registry_with(stuck=stuck)})
        await eventually(lambda: fake.jobs[stuck_id].state == "failed", "timed out")
        assert (fake.jobs[stuck_id].error or "").startswith("timeout: ")
        assert fake.jobs[stuck_id].retryable is True
        scheduler = running.bot.scheduler
        assert scheduler is not None
        assert scheduler.threads.abandoned == 1
        # Its slot came back: the next job runs while the abandoned thread still blocks.
        waiting = fake.add_job("sum", {"a": 1, "b": 1})
        await eventually(lambda: fake.jobs[waiting].state == "succeeded", "the next job ran")
        assert scheduler.threads.abandoned == 1

        release.set()
        await eventually(lambda: scheduler.threads.abandoned == 0, "the thread ended")
        assert seen_cancelled == [True] and scheduler.slots.in_use == 0
        assert await running.stop() == EXIT_OK

    async def test_past_eight_abandoned_threads_the_bot_drains_and_exits_4(
        self, start_bot: StartBot
    ) -> None:
        release = threading.Event()

        def hung(job: Job) -> dict[str, bool]:
            release.wait(30)
            return {}

        fake = FakeCoordinator(assignment=m.Assignment(max_concurrency=1))
        hung_ids = [fake.add_job("hung", timeout_s=0.01) for _ in range(ABANDONED_LIMIT + 1)]
        later = fake.add_job("sum", {"a": 1, "b": 2})
        running = start_bot(fake, bot_options={"registry": registry_with(hung=hung)})
        try:
            assert await running.exit_code() == EXIT_RESTART
        finally:
            release.set()
        assert [fake.jobs[i].state for i in hung_ids] == ["failed"] * len(hung_ids)
        assert fake.jobs[later].state == "queued"  # the drain claimed nothing more
        assert running.bot.lifecycle.state is BotState.SHUTDOWN

    async def test_a_thread_handler_can_stop_on_cancel(self, start_bot: StartBot) -> None:
        stopped = threading.Event()

        def polite(job: Job) -> dict[str, bool]:
            while not job.cancelled():
                stopped.wait(0.01)  # a step of the handler's own work
            stopped.set()
            return {}

        fake = FakeCoordinator()
        job_id = fake.add_job("polite")
        running = start_bot(
            fake, heartbeat_interval_s=1.0, bot_options={"registry": registry_with(polite=polite)}
        )
        await eventually(lambda: runs(running.bot, job_id), "job running")
        fake.heartbeat_answers.append(m.HeartbeatResponse(cancel=[job_id]))

        await fake.wait_finished(1)
        await eventually(stopped.is_set, "the handler saw the cancel")
        scheduler = running.bot.scheduler
        assert scheduler is not None
        await eventually(lambda: scheduler.slots.in_use == 0, "slot free")
        assert fake.jobs[job_id].error == "cancelled"
        assert await running.stop() == EXIT_OK


class TestLiveAssignment:
    async def test_shrinking_and_growing_keeps_the_count(self, start_bot: StartBot) -> None:
        registry, release = blocking()
        fake = FakeCoordinator(assignment=m.Assignment(max_concurrency=4))
        slow = [fake.add_job("slow") for _ in range(4)]
        running = start_bot(fake, heartbeat_interval_s=1.0, bot_options={"registry": registry})
        await eventually(lambda: all(runs(running.bot, i) for i in slow), "four running")
        scheduler = running.bot.scheduler
        assert scheduler is not None

        fake.heartbeat_answers.append(
            m.HeartbeatResponse(assignment=m.Assignment(operations=["sum"], max_concurrency=1))
        )
        await eventually(lambda: scheduler.slots.capacity == 1, "shrunk")
        quick = fake.add_job("sum", {"a": 1, "b": 2})
        more_slow = fake.add_job("slow")
        await eventually(lambda: fake.count("heartbeat") >= 4, "time passes")
        assert (scheduler.slots.in_use, scheduler.slots.free) == (4, 0)
        assert fake.jobs[quick].state == "queued"  # no slot free until below the limit

        release.set()
        await eventually(lambda: fake.jobs[quick].state == "succeeded", "quick job ran")
        assert all(fake.jobs[i].result == {"done": True} for i in slow)  # finished, reported
        assert fake.jobs[more_slow].state == "queued"  # not among the operations any more
        assert {tuple(r.operations) for r in fake.requests("claim")[-1:]} == {("sum",)}
        assert scheduler.slots.in_use == 0
        assert await running.stop() == EXIT_OK

    async def test_progress_is_rate_limited(self, start_bot: StartBot) -> None:
        release = asyncio.Event()

        async def chatty(job: Job) -> dict[str, bool]:
            for step in range(1, 1001):
                job.progress(step / 1000, f"step {step}")
            await release.wait()
            return {}

        fake = FakeCoordinator(features=[m.FEATURE_PROGRESS])
        job_id = fake.add_job("chatty")
        running = start_bot(fake, bot_options={"registry": registry_with(chatty=chatty)})
        await eventually(lambda: fake.jobs[job_id].progress == 1.0, "the latest progress")
        assert fake.count("progress") <= 2  # the latest value, not a thousand calls
        release.set()
        await fake.wait_finished(1)
        assert await running.stop() == EXIT_OK


def test_outbox_reopened_after_halt_still_holds_kept_reports(tmp_path: Path) -> None:
    report = m.ReportItem(job_id="job_1", action="complete", result={})
    with Outbox(tmp_path) as outbox:
        outbox.append([report])
    with Outbox(tmp_path) as outbox:
        assert outbox.pending() == [report]
