"""Report delivery: batch or one by one, what is done, dropped or kept."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.errors import AuthError, NetworkError, NotFoundError, RejectedError, ServerError
from bot.identity import Identity
from bot.link.session import Session
from bot.reports.delivery import PARALLEL_REPORTS, Reporter
from bot.reports.outbox import Outbox
from bot.settings import Settings
from bot.testing import FakeCoordinator
from botfleet.protocol import messages as m
from tests.unit.bot.conftest import eventually


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    with Outbox(tmp_path) as box:
        yield box


def reporter_for(fake: FakeCoordinator, outbox: Outbox, *features: str) -> Reporter:
    session = Session.start(Settings(), Identity("key", "bot", "inst_1"), ("sum",))
    session.bot_id = fake.bot_id
    session.features = frozenset(features)
    return Reporter(fake, session, outbox)


def claimed(fake: FakeCoordinator, count: int) -> list[str]:
    ids = [fake.add_job("sum", {"a": n, "b": 0}) for n in range(count)]
    for job_id in ids:
        fake.queue.remove(job_id)
        fake.jobs[job_id].state, fake.jobs[job_id].bot_id = "running", fake.bot_id
        fake.jobs[job_id].attempt = 1
    return ids


def done(job_id: str, n: int = 0) -> m.ReportItem:
    return m.ReportItem(job_id=job_id, attempt=1, action="complete", result={"result": n})


def failed(job_id: str) -> m.ReportItem:
    return m.ReportItem(job_id=job_id, attempt=1, action="fail", error="boom", retryable=False)


async def test_one_call_each_without_batch_report(outbox: Outbox) -> None:
    fake = FakeCoordinator()
    a, b = claimed(fake, 2)
    delivery = await reporter_for(fake, outbox).deliver([done(a, 1), failed(b)])
    assert len(delivery.accepted) == 2 and not delivery.undelivered
    assert fake.count("complete") == fake.count("fail") == 1
    assert fake.requests("fail")[0].retryable is False
    assert fake.requests("complete")[0].instance_id == "inst_1"
    assert len(outbox) == 0


async def test_one_batch_call_with_batch_report(outbox: Outbox) -> None:
    fake = FakeCoordinator()
    ids = claimed(fake, 3)
    reporter = reporter_for(fake, outbox, m.FEATURE_BATCH_REPORT)
    delivery = await reporter.deliver([done(i) for i in ids] + [done("job_unknown")])
    assert fake.count("report_batch") == 1 and fake.count("complete") == 0
    assert len(delivery.accepted) == 3 and [d.job_id for d in delivery.dropped] == ["job_unknown"]


async def test_refusals_are_dropped_not_kept(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    fake = FakeCoordinator()
    (a,) = claimed(fake, 1)
    fake.jobs[a].state = "failed"  # already terminal: 409
    other = fake.add_job("sum")
    fake.jobs[other].bot_id = "bot_other"  # not ours: 403
    fake.fail_next("complete", RejectedError(400, "bad"), RejectedError(400, "bad"))
    reporter = reporter_for(fake, outbox)
    delivery = await reporter.deliver([done("x1"), done("x2"), done(a), done(other), done("gone")])
    assert len(delivery.dropped) == 5 and not delivery.undelivered and len(outbox) == 0
    assert caplog.text.count("dropped") == 5


async def test_network_failure_keeps_the_rest_in_the_outbox(outbox: Outbox) -> None:
    fake = FakeCoordinator()
    ids = claimed(fake, 20)
    gate = fake.gates["complete"] = asyncio.Event()
    fake.fail_next("complete", NetworkError("down"))
    reporter = reporter_for(fake, outbox)
    task = asyncio.create_task(reporter.deliver([done(i) for i in ids]))
    await eventually(lambda: fake.count("complete") == PARALLEL_REPORTS, "calls in flight")
    gate.set()
    delivery = await task
    # The first calls were in flight together; after the failure no new one started.
    assert fake.count("complete") == PARALLEL_REPORTS
    assert len(delivery.accepted) == PARALLEL_REPORTS - 1
    assert len(delivery.undelivered) == 20 - len(delivery.accepted)
    assert isinstance(delivery.error, NetworkError)
    assert {i.job_id for i in outbox.pending()} == {i.job_id for i in delivery.undelivered}


async def test_batch_transient_failure_keeps_everything(outbox: Outbox) -> None:
    fake = FakeCoordinator()
    ids = claimed(fake, 2)
    fake.fail_next("report_batch", ServerError(502, "gateway"))
    delivery = await reporter_for(fake, outbox, m.FEATURE_BATCH_REPORT).deliver(
        [done(i) for i in ids]
    )
    assert len(delivery.undelivered) == 2 and len(outbox) == 2


@pytest.mark.parametrize("refusal", [RejectedError(400, "bad item"), NotFoundError(404, "no")])
async def test_refused_batch_falls_back_to_one_by_one(outbox: Outbox, refusal: Exception) -> None:
    fake = FakeCoordinator()
    ids = claimed(fake, 2)
    fake.fail_next("report_batch", refusal)
    delivery = await reporter_for(fake, outbox, m.FEATURE_BATCH_REPORT).deliver(
        [done(i) for i in ids]
    )
    assert len(delivery.accepted) == 2 and fake.count("complete") == 2


async def test_batch_answer_leaving_reports_out_keeps_them(outbox: Outbox) -> None:
    fake = FakeCoordinator()
    a, b = claimed(fake, 2)

    async def partial(request: m.BatchReportRequest) -> m.BatchReportResponse:
        return m.BatchReportResponse(results=[m.ReportResult(job_id=a, status="accepted")])

    fake.report_batch = partial  # type: ignore[method-assign]
    delivery = await reporter_for(fake, outbox, m.FEATURE_BATCH_REPORT).deliver([done(a), done(b)])
    assert [i.job_id for i in delivery.undelivered] == [b]
    assert delivery.error is not None and "left some reports out" in str(delivery.error)


async def test_more_than_a_batch_is_split_and_stops_after_a_failure(outbox: Outbox) -> None:
    fake = FakeCoordinator()
    ids = claimed(fake, 1500)
    fake.fail_next("report_batch", NetworkError("down"))
    reporter = reporter_for(fake, outbox, m.FEATURE_BATCH_REPORT)
    delivery = await reporter.send([done(i) for i in ids])
    assert fake.count("report_batch") == 1 and len(delivery.undelivered) == 1500
    delivery = await reporter.send([done(i) for i in ids])
    assert [len(r.reports) for r in fake.requests("report_batch")[1:]] == [1000, 500]
    assert len(delivery.accepted) == 1500


async def test_flush_removes_only_what_is_done(outbox: Outbox) -> None:
    fake = FakeCoordinator()
    a, b = claimed(fake, 2)
    outbox.append([done(a), done(b), done("job_gone")])
    reporter = reporter_for(fake, outbox)
    fake.fail_next("complete", AuthError(401, "expired"))

    delivery = await reporter.flush_outbox()
    assert isinstance(delivery.error, AuthError) and len(outbox) == 3

    delivery = await reporter.flush_outbox()
    assert len(delivery.accepted) == 2 and len(delivery.dropped) == 1 and len(outbox) == 0
    assert (await reporter.flush_outbox()).accepted == []
