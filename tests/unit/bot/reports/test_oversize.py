"""A report too large for the coordinator's request limit fails its job at once, for good,
whether the bot knew the limit (`config.max_body_bytes`) or learnt it from a 413; it never
sinks the reports batched with it and never waits in the outbox."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bot.errors import NetworkError, TooLargeError
from bot.identity import Identity
from bot.jobs import Registry, load_plugins
from bot.link.session import Session
from bot.reports import sizing
from bot.reports.delivery import Reporter
from bot.reports.outbox import Outbox
from bot.settings import Settings
from bot.state import Job
from bot.testing import FakeCoordinator
from bot.work.scheduler import Scheduler
from botfleet.protocol import encode
from botfleet.protocol import messages as m
from tests.unit.bot.conftest import MakeScheduler, RecordingHooks, eventually

MIB = 1024 * 1024
BIG = {"blob": "x" * (2 * MIB)}  # a 2 MiB result
BIG_BYTES = len(encode(BIG))
BATCHED = (m.FEATURE_BATCH_REPORT,)
RIDING = (m.FEATURE_BATCH_REPORT, m.FEATURE_REPORT_ON_CLAIM)


def _registry() -> Registry:
    registry = load_plugins(Registry(), entry_points=())

    async def big(job: Job) -> dict[str, Any]:
        return BIG

    registry.register("big", big)
    return registry


def _claimed(fake: FakeCoordinator, *ops: str) -> list[str]:
    ids = [fake.add_job(op, {"a": 1, "b": 2}) for op in ops]
    for job_id in ids:
        fake.queue.remove(job_id)
        job = fake.jobs[job_id]
        job.state, job.bot_id, job.attempt = "running", fake.bot_id, 1
    return ids


def _done(job_id: str, result: dict[str, Any]) -> m.ReportItem:
    return m.ReportItem(job_id=job_id, attempt=1, action="complete", result=result)


def _reporter(fake: FakeCoordinator, outbox: Outbox, *features: str) -> Reporter:
    session = Session.start(Settings(), Identity("key", "bot", "inst_1"), ("sum", "big"))
    session.bot_id = fake.bot_id
    session.features = frozenset(features)
    return Reporter(fake, session, outbox)


def _assert_failed_for_size(fake: FakeCoordinator, job_id: str, limit: int) -> None:
    job = fake.jobs[job_id]
    assert job.state == "failed"
    assert job.retryable is False
    assert job.error is not None
    assert f"{BIG_BYTES} bytes" in job.error and f"{limit} bytes" in job.error
    assert "too large" in job.error


def test_a_result_too_large_becomes_a_failure_for_good_naming_both_sizes() -> None:
    report = _done("job_1", BIG)
    fitted = sizing.fit(report, MIB)
    assert fitted.action == "fail" and fitted.retryable is False
    assert fitted.job_id == "job_1" and fitted.attempt == 1
    assert f"{BIG_BYTES} bytes" in (fitted.error or "") and f"{MIB} bytes" in (fitted.error or "")
    small = _done("job_2", {"result": 3})
    assert sizing.fit(small, MIB) is small


def test_the_session_takes_the_limit_from_the_config() -> None:
    session = Session.start(Settings(), Identity("key", "bot", "inst_1"), ("sum",))
    assert session.max_body_bytes is None
    assert session.apply_config(m.BotConfig(max_body_bytes=MIB)) == [f"max_body_bytes={MIB}"]
    assert session.max_body_bytes == MIB
    assert session.apply_config(m.BotConfig(max_body_bytes=MIB)) == []
    session.apply_config(m.BotConfig(max_body_bytes=0))  # nonsense: ignored, as unknown
    assert session.max_body_bytes is None
    session.apply_config(m.BotConfig(max_body_bytes=MIB))
    session.apply_config(m.BotConfig())  # a coordinator that does not say it
    assert session.max_body_bytes is None


def test_a_long_error_text_is_cut_and_keeps_retryable() -> None:
    report = m.ReportItem(job_id="job_1", attempt=1, action="fail", error="e" * 9000)
    cut = sizing.shrunk(report, 4096)
    assert cut is not None and cut.retryable is True
    assert len(cut.error or "") <= sizing.CUT_ERROR_CHARS and "4096 bytes" in (cut.error or "")
    assert sizing.shrunk(cut, 4096) is None  # nothing left to make smaller: no loop


def test_groups_fit_the_limit_in_order() -> None:
    items = [_done(f"job_{n}", {"blob": "y" * 300_000}) for n in range(7)]
    groups = sizing.groups(items, MIB, 1000)
    assert [item for group in groups for item in group] == items
    assert len(groups) > 1
    for group in groups:
        request = m.BatchReportRequest(instance_id="i" * 200, reports=group)
        assert len(encode(request)) <= MIB
    assert sizing.groups(items, None, 3) == [items[:3], items[3:6], items[6:]]


async def test_a_known_limit_fails_the_job_at_once(make_scheduler: MakeScheduler) -> None:
    fake = FakeCoordinator(max_body_bytes=MIB, features=BATCHED)
    big, small = fake.add_job("big"), fake.add_job("sum", {"a": 1, "b": 2})
    scheduler = make_scheduler(fake, registry=_registry(), features=BATCHED)
    scheduler.session.max_body_bytes = MIB

    await scheduler.tick()

    _assert_failed_for_size(fake, big, MIB)
    assert fake.jobs[small].state == "succeeded"
    assert scheduler.reporter.counts.replaced == 1
    assert len(scheduler.outbox) == 0 and not scheduler.reporting.unreported()
    sent = [item for r in fake.requests("report_batch") for item in r.reports]
    assert all(len(encode(item)) < MIB for item in sent)  # the 2 MiB never left the bot


async def test_a_413_on_a_batch_fails_only_the_oversized_one(tmp_path: Path) -> None:
    fake = FakeCoordinator(max_body_bytes=MIB)  # the bot does not know the limit
    ids = _claimed(fake, "sum", "sum", "big", "sum", "sum")
    items = [_done(i, BIG if n == 2 else {"result": n}) for n, i in enumerate(ids)]
    with Outbox(tmp_path) as outbox:
        delivery = await _reporter(fake, outbox, *BATCHED).deliver(items)
        assert len(outbox) == 0
    assert [item.job_id for item in delivery.replaced] == [ids[2]]
    assert not delivery.undelivered and not delivery.dropped
    _assert_failed_for_size(fake, ids[2], MIB)
    assert [fake.jobs[i].state for i in ids].count("succeeded") == 4
    assert fake.count("report_batch") < len(ids) + 3  # halved, not one by one


async def test_a_413_on_a_single_report_fails_its_job(tmp_path: Path) -> None:
    fake = FakeCoordinator(max_body_bytes=MIB)
    big, small = _claimed(fake, "big", "sum")
    with Outbox(tmp_path) as outbox:
        delivery = await _reporter(fake, outbox).deliver([_done(big, BIG), _done(small, {})])
        assert len(outbox) == 0
    assert not delivery.undelivered
    _assert_failed_for_size(fake, big, MIB)
    assert fake.jobs[small].state == "succeeded"


async def test_the_outbox_never_keeps_an_undeliverable_report(tmp_path: Path) -> None:
    fake = FakeCoordinator(max_body_bytes=MIB)
    (big,) = _claimed(fake, "big")
    with Outbox(tmp_path) as outbox:
        outbox.append([_done(big, BIG)])  # left by a run that did not know the limit
        reporter = _reporter(fake, outbox, *BATCHED)
        too_large = TooLargeError(413, "too large (limit 1048576 bytes)", limit_bytes=MIB)
        # Refused as too large, then the failure standing for it is held up by the network.
        fake.fail_next("report_batch", too_large, NetworkError("down"))
        first = await reporter.flush_outbox()
        assert first.error is not None and first.replaced == [_done(big, BIG)]
        # The 2 MiB report left the disk; the failure standing for it waits instead.
        kept = outbox.pending()
        assert [(item.action, item.retryable) for item in kept] == [("fail", False)]
        second = await reporter.flush_outbox()
        assert second.error is None and len(outbox) == 0
    with Outbox(tmp_path) as reopened:
        assert len(reopened) == 0
    _assert_failed_for_size(fake, big, MIB)
    assert fake.count("report_batch") == 3


async def test_a_claim_too_large_with_its_riders_sends_them_alone(
    make_scheduler: MakeScheduler,
) -> None:
    fake = FakeCoordinator(features=RIDING, max_body_bytes=MIB)
    ids = _claimed(fake, "sum", "sum")
    fake.add_job("sum", {"a": 1, "b": 1})
    scheduler = make_scheduler(fake, hooks=RecordingHooks(), features=RIDING)
    reports = [_done(i, {"blob": "z" * 600_000}) for i in ids]  # one fits, two do not
    for report in reports:
        scheduler.reporting.queue(report)

    assert await scheduler.claim(1) == []  # refused as too large: nothing claimed

    assert scheduler.reporting.pending == reports and scheduler.reporting.take_riders() == []
    stop = asyncio.Event()
    stop.set()  # the report loop delivers what is pending, then returns
    await scheduler.reporting.report_loop(stop)
    assert [fake.jobs[i].state for i in ids] == ["succeeded", "succeeded"]
    assert len(scheduler.outbox) == 0
    tasks = await scheduler.claim(1)  # the next claim goes as usual
    assert len(tasks) == 1
    await asyncio.gather(*tasks)


async def test_riders_too_large_for_a_claim_go_on_their_own(
    make_scheduler: MakeScheduler,
) -> None:
    fake = FakeCoordinator(features=RIDING, max_body_bytes=MIB)
    fake.announce_limit = False
    registry = load_plugins(Registry(), entry_points=())

    async def medium(job: Job) -> dict[str, Any]:
        return {"blob": "z" * 600_000}  # one fits a request, two do not

    registry.register("medium", medium)
    ids = [fake.add_job("medium") for _ in range(2)] + [fake.add_job("sum", {"a": 1, "b": 1})]
    scheduler = make_scheduler(fake, registry=registry, hooks=RecordingHooks(), features=RIDING)
    await _run(scheduler, fake, len(ids))
    assert [fake.jobs[i].state for i in ids] == ["succeeded"] * 3


async def test_an_oversized_progress_message_is_cut_and_the_job_ends(
    make_scheduler: MakeScheduler,
) -> None:
    registry = load_plugins(Registry(), entry_points=())

    async def chatty(job: Job) -> dict[str, Any]:
        job.progress(0.5, "p" * (2 * MIB))
        await eventually(lambda: fake.count("progress") == 1, "progress sent")
        return {"done": True}

    registry.register("chatty", chatty)
    fake = FakeCoordinator(features=[m.FEATURE_PROGRESS], max_body_bytes=MIB)
    job_id = fake.add_job("chatty")
    scheduler = make_scheduler(fake, registry=registry, features=[m.FEATURE_PROGRESS])
    scheduler.session.max_body_bytes = MIB
    stop = asyncio.Event()
    progress = asyncio.create_task(scheduler.progress_loop(stop))
    try:
        await asyncio.wait_for(scheduler.tick(), 30)
    finally:
        stop.set()
        await asyncio.wait_for(progress, 30)
    (request,) = fake.requests("progress")
    assert request.message == "p" * 1000  # the start of it, within the protocol's bound
    assert fake.jobs[job_id].state == "succeeded"


async def _run(scheduler: Scheduler, fake: FakeCoordinator, finished: int) -> None:
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(scheduler.claim_loop(stop)),
        asyncio.create_task(scheduler.reporting.report_loop(stop)),
    ]
    try:
        await fake.wait_finished(finished)
        await eventually(lambda: not scheduler.reporting.pending, "reports settled")
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
