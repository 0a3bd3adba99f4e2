"""Job logs and the errors of every attempt, on every backend, with the fake clock."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from botfleet.clock import FakeClock
from coordinator.store.base import ReportOutcome, Retention, Store
from coordinator.store.joblogs import LogAppend, LogQuery, NewLogLine
from coordinator.store.rules import BOT_LEASE_EXPIRED
from tests.support.backends import StoreFactory
from tests.unit.store.support import claim_ids, complete, fail, register, submit

CAP = 100


def lines(clock: FakeClock, *texts: str, level: str = "info") -> list[NewLogLine]:
    return [NewLogLine(clock.now(), level, text) for text in texts]


async def append(
    store: Store, bot_id: str, job_id: str, attempt: int, texts: list[NewLogLine], cap: int = CAP
) -> tuple[ReportOutcome, int, int]:
    (outcome,) = await store.append_logs([LogAppend(bot_id, job_id, attempt, texts, cap)])
    return outcome.outcome, outcome.stored, outcome.dropped


async def texts(store: Store, job_id: str, **query: int | None) -> list[str]:
    page = await store.read_logs(LogQuery(job_id, **query))  # type: ignore[arg-type]
    assert page is not None
    return [line.text for line in page.lines]


async def test_every_attempt_keeps_its_own_error(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock, max_attempts=3)
    for error in ("first", "second"):
        assert await claim_ids(store, bot.id) == [job_id]
        await store.report(bot.id, [fail(job_id, error=error)])
        clock.advance(3600)
    assert await claim_ids(store, bot.id) == [job_id]
    clock.advance(3600)
    await store.expire_leases()

    attempts = await store.list_attempts(job_id)
    assert [(a.attempt, a.outcome, a.error) for a in attempts] == [
        (1, "failed", "first"),
        (2, "failed", "second"),
        (3, "released", BOT_LEASE_EXPIRED),  # the silent bot went offline
    ]
    assert all(a.bot_id == bot.id and a.ended_at is not None for a in attempts)


async def test_a_success_leaves_no_error_on_its_attempt(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    assert await claim_ids(store, bot.id) == [job_id]
    await store.report(bot.id, [complete(job_id)])
    (attempt,) = await store.list_attempts(job_id)
    assert (attempt.outcome, attempt.error) == ("succeeded", None)


async def test_lines_are_numbered_per_job_and_read_after_a_cursor(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock, max_attempts=2)
    assert await claim_ids(store, bot.id) == [job_id]
    assert await append(store, bot.id, job_id, 1, lines(clock, "a", "b")) == (
        ReportOutcome.ACCEPTED,
        2,
        0,
    )
    await store.report(bot.id, [fail(job_id)])
    # The last lines of an attempt that ended still count: they follow its report.
    await append(store, bot.id, job_id, 1, lines(clock, "c"))
    clock.advance(3600)
    assert await claim_ids(store, bot.id) == [job_id]
    await append(store, bot.id, job_id, 2, lines(clock, "d", "e", level="error"))

    page = await store.read_logs(LogQuery(job_id))
    assert page is not None
    assert [(line.seq, line.attempt, line.text) for line in page.lines] == [
        (1, 1, "a"),
        (2, 1, "b"),
        (3, 1, "c"),
        (4, 2, "d"),
        (5, 2, "e"),
    ]
    assert page.lines[-1].level == "error" and page.job_state == "running"
    assert await texts(store, job_id, after=2) == ["c", "d", "e"]
    assert await texts(store, job_id, attempt=2) == ["d", "e"]
    assert await texts(store, job_id, attempt=1, after=1, limit=1) == ["b"]


async def test_lines_from_a_bot_that_does_not_hold_the_attempt_are_refused(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    other = await register(store, clock, bot_key="other", instance_id="other-1")
    job_id = await submit(store, clock)
    assert await claim_ids(store, bot.id) == [job_id]
    refused = (ReportOutcome.CONFLICT, 0, 0)
    assert await append(store, other.id, job_id, 1, lines(clock, "x")) == refused
    assert await append(store, bot.id, job_id, 2, lines(clock, "x")) == refused
    missing = await append(store, bot.id, "job_unknown", 1, lines(clock, "x"))
    assert missing == (ReportOutcome.NOT_FOUND, 0, 0)
    assert await texts(store, job_id) == []
    assert await store.read_logs(LogQuery("job_unknown")) is None


async def test_the_cap_keeps_the_first_lines_and_counts_the_rest(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    assert await claim_ids(store, bot.id) == [job_id]
    forty = "x" * 40
    assert await append(store, bot.id, job_id, 1, lines(clock, forty, forty, forty, "y")) == (
        ReportOutcome.ACCEPTED,
        2,
        2,
    )
    # Once a line was dropped, none after it is kept, even one that would fit.
    assert await append(store, bot.id, job_id, 1, lines(clock, "z")) == (
        ReportOutcome.ACCEPTED,
        0,
        1,
    )
    page = await store.read_logs(LogQuery(job_id))
    assert page is not None
    assert [line.text for line in page.lines] == [forty, forty]
    sizes = page.sizes
    # A line counts its text and a newline.
    assert (sizes.last_seq, sizes.bytes, sizes.dropped_lines, sizes.dropped_bytes) == (
        2,
        82,
        3,
        45,
    )


async def test_text_no_backend_can_store_is_replaced(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    assert await claim_ids(store, bot.id) == [job_id]
    bad = "nul\x00 and a lone surrogate \udcff, then é"
    assert (await append(store, bot.id, job_id, 1, lines(clock, bad)))[1] == 1
    (text,) = await texts(store, job_id)
    assert text == "nul\ufffd and a lone surrogate ?, then é"


async def test_retention_deletes_a_jobs_lines_with_it(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    assert await claim_ids(store, bot.id) == [job_id]
    await append(store, bot.id, job_id, 1, lines(clock, "kept until the job goes"))
    await store.report(bot.id, [complete(job_id)])
    clock.advance(timedelta(hours=2).total_seconds())

    outcome = await store.sweep(Retention(finished_s=3600.0, bots_s=None))

    assert outcome.jobs_deleted == 1
    assert await store.read_logs(LogQuery(job_id)) is None
    # A job submitted later with logs of its own starts from a clean count.
    again = await submit(store, clock)
    assert await claim_ids(store, bot.id) == [again]
    assert (await append(store, bot.id, again, 1, lines(clock, "fresh")))[1] == 1


async def test_one_call_appends_for_several_jobs_and_refuses_only_the_strangers(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    for _ in range(2):
        await submit(store, clock)
    first, second = await claim_ids(store, bot.id, limit=2)
    queued = await submit(store, clock)
    outcomes = await store.append_logs(
        [
            LogAppend(bot.id, first, 1, lines(clock, "1a"), CAP),
            LogAppend(bot.id, second, 1, lines(clock, "2a", "2b"), CAP),
            LogAppend(bot.id, queued, 1, lines(clock, "never"), CAP),
            LogAppend(bot.id, first, 1, lines(clock, "1b"), CAP),
        ]
    )
    assert [(o.outcome, o.stored) for o in outcomes] == [
        (ReportOutcome.ACCEPTED, 1),
        (ReportOutcome.ACCEPTED, 2),
        (ReportOutcome.CONFLICT, 0),
        (ReportOutcome.ACCEPTED, 1),
    ]
    page = await store.read_logs(LogQuery(first))
    assert page is not None and [(x.seq, x.text) for x in page.lines] == [(1, "1a"), (2, "1b")]
    assert await texts(store, second) == ["2a", "2b"]
    assert await texts(store, queued) == []


async def test_two_coordinators_appending_at_once_number_every_line_once(
    store: Store, store_factory: StoreFactory, clock: FakeClock
) -> None:
    """Concurrent calls for the same jobs (on PostgreSQL, from two processes) take turns:
    every line gets one number, none is lost."""
    second = store_factory()
    await second.open()
    try:
        bot = await register(store, clock)
        for _ in range(2):
            await submit(store, clock)
        first_job, second_job = await claim_ids(store, bot.id, limit=2)

        async def send(target: Store, tag: str) -> None:
            for n in range(10):
                await target.append_logs(
                    [
                        LogAppend(bot.id, job, 1, lines(clock, f"{tag}{n}a", f"{tag}{n}b"), 10**6)
                        for job in (second_job, first_job)  # not in id order
                    ]
                )

        await asyncio.gather(send(store, "x"), send(second, "y"))
        for job in (first_job, second_job):
            page = await store.read_logs(LogQuery(job))
            assert page is not None
            assert [line.seq for line in page.lines] == list(range(1, 41))
            texts_seen = [line.text for line in page.lines]
            assert sorted(texts_seen) == sorted(
                f"{tag}{n}{half}" for tag in "xy" for n in range(10) for half in "ab"
            )
            # A call's lines stay together and in order.
            for index in range(0, 40, 2):
                assert texts_seen[index][:-1] == texts_seen[index + 1][:-1]
    finally:
        await second.close()
