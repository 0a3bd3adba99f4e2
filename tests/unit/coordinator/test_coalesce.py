"""Group commit of single reports: batched while the bot's previous call is in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from coordinator.coalesce import ReportCoalescer
from coordinator.store.base import ReportInput, ReportOutcome, StoreError
from tests.support.processes import wait_until_async

GENEROUS_S = 30.0


class GatedReports:
    """store.report that holds each call until released, recording what it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.gate = asyncio.Event()
        self.fail_with: Exception | None = None

    async def report(self, bot_id: str, reports: Sequence[ReportInput]) -> list[ReportOutcome]:
        self.calls.append((bot_id, [r.job_id for r in reports]))
        await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return [
            ReportOutcome.NOT_FOUND if r.job_id.startswith("gone") else ReportOutcome.ACCEPTED
            for r in reports
        ]


def _complete(job_id: str) -> ReportInput:
    return ReportInput(job_id, "complete", result={})


async def _calls_made(store: GatedReports, count: int) -> None:
    async def made() -> bool:
        return len(store.calls) >= count

    await wait_until_async(made, GENEROUS_S, f"{count} store call(s)")


async def test_reports_arriving_during_a_call_go_together_in_the_next() -> None:
    store = GatedReports()
    coalescer = ReportCoalescer(store)  # type: ignore[arg-type]
    first = asyncio.create_task(coalescer.report("bot_a", _complete("j1")))
    await _calls_made(store, 1)
    later = [
        asyncio.create_task(coalescer.report("bot_a", _complete(job_id)))
        for job_id in ("j2", "gone-3", "j4")
    ]
    await asyncio.sleep(0)
    store.gate.set()
    outcomes = await asyncio.gather(first, *later)
    assert store.calls == [("bot_a", ["j1"]), ("bot_a", ["j2", "gone-3", "j4"])]
    assert outcomes == [
        ReportOutcome.ACCEPTED,
        ReportOutcome.ACCEPTED,
        ReportOutcome.NOT_FOUND,
        ReportOutcome.ACCEPTED,
    ]


async def test_bots_are_never_mixed() -> None:
    store = GatedReports()
    store.gate.set()
    coalescer = ReportCoalescer(store)  # type: ignore[arg-type]
    await asyncio.gather(
        coalescer.report("bot_a", _complete("a1")), coalescer.report("bot_b", _complete("b1"))
    )
    assert sorted(store.calls) == [("bot_a", ["a1"]), ("bot_b", ["b1"])]


async def test_a_batch_is_capped() -> None:
    store = GatedReports()
    store.gate.set()
    coalescer = ReportCoalescer(store, max_batch=2)  # type: ignore[arg-type]
    await asyncio.gather(*(coalescer.report("bot_a", _complete(f"j{i}")) for i in range(5)))
    assert [len(ids) for _, ids in store.calls] == [2, 2, 1]


async def test_a_store_failure_reaches_every_caller_of_the_batch() -> None:
    store = GatedReports()
    store.fail_with = StoreError("disk full")
    coalescer = ReportCoalescer(store)  # type: ignore[arg-type]
    calls = [asyncio.create_task(coalescer.report("bot_a", _complete(f"j{i}"))) for i in range(3)]
    await _calls_made(store, 1)
    store.gate.set()
    for call in calls:
        with pytest.raises(StoreError, match="disk full"):
            await call
    # and the next report is tried afresh
    store.fail_with = None
    assert await coalescer.report("bot_a", _complete("j9")) is ReportOutcome.ACCEPTED


async def test_close_waits_for_batches_in_flight() -> None:
    store = GatedReports()
    coalescer = ReportCoalescer(store)  # type: ignore[arg-type]
    call = asyncio.create_task(coalescer.report("bot_a", _complete("j1")))
    await _calls_made(store, 1)
    closing = asyncio.create_task(coalescer.close())
    await asyncio.sleep(0)
    assert not closing.done()
    store.gate.set()
    await closing
    assert await call is ReportOutcome.ACCEPTED
