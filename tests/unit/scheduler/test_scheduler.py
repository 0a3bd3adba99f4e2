"""Scheduler.tick(): claim no more than the free slots, run, report; failures kept apart."""

from __future__ import annotations

import asyncio
import errno
import logging
from pathlib import Path

import pytest

from bot.errors import NetworkError, OutboxFullError, ServerError
from bot.jobs import Registry, load_plugins
from bot.reports.outbox import Outbox
from bot.state import Job
from bot.testing import FailingDisk, FakeCoordinator
from botfleet.protocol import messages as m

from .conftest import MakeScheduler


class TestScheduler:
    async def test_tick_no_jobs(self, make_scheduler: MakeScheduler, tmp_path: Path) -> None:
        fake = FakeCoordinator()
        scheduler = make_scheduler(fake)

        result = await scheduler.tick()

        assert fake.count("claim") == 1
        assert fake.requests("claim")[0].limit == 2  # MAX_CONCURRENCY 2, all free
        assert fake.count("complete") == fake.count("fail") == 0
        assert (result.claimed, result.succeeded, result.failed) == (0, 0, 0)
        assert len(scheduler.running) == 0 and scheduler.slots.in_use == 0

    async def test_tick_runs_and_reports_each_job(
        self, make_scheduler: MakeScheduler, tmp_path: Path
    ) -> None:
        fake = FakeCoordinator()
        first = fake.add_job("sum", {"a": 42, "b": 58})
        second = fake.add_job("subtract", {"a": 7, "b": 9})
        scheduler = make_scheduler(fake)

        result = await scheduler.tick()

        assert result.claimed == 2 and result.succeeded == 2 and result.delivered == 2
        assert fake.jobs[first].result == {"result": 100}
        assert fake.jobs[second].result == {"result": -2}
        assert scheduler.slots.in_use == 0

    async def test_tick_claims_no_more_than_free_slots(
        self, make_scheduler: MakeScheduler, tmp_path: Path
    ) -> None:
        fake = FakeCoordinator()
        for n in range(5):
            fake.add_job("sum", {"a": n, "b": 1})
        scheduler = make_scheduler(fake)
        scheduler.slots.take()  # one of the two slots busy elsewhere

        result = await scheduler.tick()

        assert fake.requests("claim")[0].limit == 1
        assert result.claimed == 1
        assert len(fake.queue) == 4

    async def test_tick_with_no_free_slot_does_not_claim(
        self, make_scheduler: MakeScheduler, tmp_path: Path
    ) -> None:
        fake = FakeCoordinator()
        scheduler = make_scheduler(fake)
        scheduler.slots.resize(0)

        result = await scheduler.tick()

        assert fake.count("claim") == 0 and result.claimed == 0

    async def test_tick_when_paused_does_not_claim(
        self, make_scheduler: MakeScheduler, tmp_path: Path
    ) -> None:
        fake = FakeCoordinator()
        scheduler = make_scheduler(fake)
        scheduler.session.apply_assignment(m.Assignment(max_concurrency=2, paused=True))

        await scheduler.tick()

        assert fake.count("claim") == 0

    async def test_claim_asks_for_assigned_operations_this_bot_handles(
        self, make_scheduler: MakeScheduler, tmp_path: Path
    ) -> None:
        fake = FakeCoordinator()
        scheduler = make_scheduler(fake)
        scheduler.session.apply_assignment(
            m.Assignment(operations=["sum", "multiply"], max_concurrency=3)
        )
        scheduler.apply_assignment()

        await scheduler.tick()

        request = fake.requests("claim")[0]
        assert request.operations == ["sum"] and request.limit == 3

    async def test_handler_failure_is_reported_as_failed(
        self, make_scheduler: MakeScheduler, tmp_path: Path
    ) -> None:
        fake = FakeCoordinator()
        job_id = fake.add_job("sum", {"a": "1", "b": 2})
        scheduler = make_scheduler(fake)

        result = await scheduler.tick()

        assert result.failed == 1
        job = fake.jobs[job_id]
        assert job.state == "failed" and job.retryable is False
        assert "'a' must be a number" in (job.error or "")

    async def test_unknown_operation_fails_that_job_only(
        self, make_scheduler: MakeScheduler, tmp_path: Path
    ) -> None:
        fake = FakeCoordinator()
        unknown = fake.add_job("multiply", {"a": 7, "b": 9})
        known = fake.add_job("sum", {"a": 1, "b": 2})
        scheduler = make_scheduler(fake)
        # A coordinator that hands out an operation the bot never asked for.
        scheduler.session.capabilities = ("sum", "subtract", "multiply")

        await scheduler.tick()

        assert fake.jobs[unknown].state == "failed"
        assert "unknown operation 'multiply'" in (fake.jobs[unknown].error or "")
        assert fake.jobs[unknown].retryable is True
        assert fake.jobs[known].result == {"result": 3}

    async def test_success_is_never_reported_failed_when_the_network_breaks(
        self, make_scheduler: MakeScheduler, tmp_path: Path
    ) -> None:
        fake = FakeCoordinator()
        job_id = fake.add_job("sum", {"a": 1, "b": 2})
        fake.fail_next("complete", NetworkError("connection reset"))
        scheduler = make_scheduler(fake)

        result = await scheduler.tick()

        assert fake.count("fail") == 0
        assert result.succeeded == 1 and result.kept == 1
        kept = scheduler.outbox.pending()
        assert [(k.job_id, k.action, k.result) for k in kept] == [
            (job_id, "complete", {"result": 3})
        ]

        # The next tick flushes the outbox first: the coordinator gets the result.
        result = await scheduler.tick()
        assert fake.jobs[job_id].result == {"result": 3}
        assert result.delivered == 1 and result.kept == 0
        with Outbox(tmp_path) as reopened:
            assert len(reopened) == 0

    async def test_conflict_drops_the_report(
        self, make_scheduler: MakeScheduler, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        class LostLease(FakeCoordinator):
            async def complete(self, job_id: str, request: m.CompleteRequest) -> None:
                self.jobs[job_id].state = "failed"  # the reaper got there first
                await super().complete(job_id, request)

        fake = LostLease()
        job_id = fake.add_job("sum", {"a": 1, "b": 2})
        scheduler = make_scheduler(fake)
        caplog.set_level(logging.INFO)

        result = await scheduler.tick()

        assert result.kept == 0 and len(scheduler.outbox) == 0
        assert fake.jobs[job_id].state == "failed"
        assert any("dropped" in r.getMessage() for r in caplog.records)

    async def test_server_error_keeps_the_report(
        self, make_scheduler: MakeScheduler, tmp_path: Path
    ) -> None:
        fake = FakeCoordinator()
        fake.add_job("sum", {"a": 1, "b": 2})
        fake.fail_next("complete", ServerError(500, "boom"))
        scheduler = make_scheduler(fake)

        result = await scheduler.tick()

        assert result.kept == 1

    async def test_outbox_full_reaches_the_caller(
        self, make_scheduler: MakeScheduler, tmp_path: Path
    ) -> None:
        fake = FakeCoordinator()
        fake.add_job("sum", {"a": 1, "b": 2})
        fake.fail_next("complete", NetworkError("down"))
        disk = FailingDisk()
        scheduler = make_scheduler(fake, disk=disk)
        disk.append_errno = errno.ENOSPC

        with pytest.raises(OutboxFullError):
            await scheduler.tick()

    async def test_jobs_run_concurrently_up_to_the_limit(
        self, make_scheduler: MakeScheduler, tmp_path: Path
    ) -> None:
        registry = Registry()
        both_started = asyncio.Event()
        started: list[str] = []

        async def slow(job: Job) -> dict[str, str]:
            started.append(job.id)
            if len(started) == 2:
                both_started.set()
            await both_started.wait()  # only returns if both run at the same time
            return {"id": job.id}

        registry.register("slow", slow)
        fake = FakeCoordinator()
        fake.add_job("slow")
        fake.add_job("slow")
        fake.add_job("slow")
        scheduler = make_scheduler(fake, registry=registry)

        result = await asyncio.wait_for(scheduler.tick(), 30)

        assert result.claimed == 2 and result.succeeded == 2
        assert len(fake.queue) == 1


def test_builtin_plugins_are_loaded() -> None:
    registry = load_plugins(Registry(), entry_points=())
    assert registry.operations() == ("subtract", "sum")
