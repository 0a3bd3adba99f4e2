"""Capture by context: `job.log` and `logging` inside handlers, async or in threads,
reach their own job only; shipping sends them in batches, best effort."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import pytest

from bot.errors import ConflictError, NetworkError
from bot.joblog.buffer import dropped_marker
from bot.joblog.capture import JobLog, capturing, install_handler, level_name
from bot.jobs import Registry, load_plugins
from bot.settings import Settings
from bot.state import Job
from bot.testing import FakeCoordinator, ScaledClock
from botfleet.protocol import messages as m
from tests.unit.bot.conftest import MakeScheduler

CONCURRENT = 8
LINES = 50
handler_log = logging.getLogger("tests.handler")


@pytest.fixture(autouse=True)
def info_level() -> None:
    install_handler()
    logging.getLogger().setLevel(logging.INFO)


def registry_with_loggers(release: threading.Event) -> Registry:
    registry = load_plugins(Registry(), entry_points=())

    async def chatty(job: Job) -> dict[str, int]:
        name = job.payload["name"]
        for i in range(LINES):
            job.log(f"{name} direct {i}")
            handler_log.info("%s logged %d", name, i)
            await asyncio.sleep(0)  # the other handlers log in between
        return {}

    def plain(job: Job) -> dict[str, int]:  # in a thread of its own
        name = job.payload["name"]
        release.wait(30)  # all the threads log at once
        for i in range(LINES):
            job.log(f"{name} direct {i}")
            handler_log.warning("%s logged %d", name, i)
        return {}

    registry.register("chatty", chatty)
    registry.register("plain", plain)
    return registry


@pytest.mark.parametrize("op", ["chatty", "plain"])
async def test_eight_handlers_logging_at_once_never_mix_their_lines(
    make_scheduler: MakeScheduler, op: str, tmp_path: Path
) -> None:
    release = threading.Event()
    fake = FakeCoordinator()
    names = {fake.add_job(op, {"name": f"h{n}"}): f"h{n}" for n in range(CONCURRENT)}
    scheduler = make_scheduler(
        fake,
        registry=registry_with_loggers(release),
        clock=ScaledClock(0.001),
        features=[m.FEATURE_LOGS],
        settings=Settings(
            state_dir=tmp_path, claim_batch_size=CONCURRENT, max_concurrency=CONCURRENT
        ),
    )
    tick = asyncio.create_task(scheduler.tick())
    await asyncio.sleep(0.05)
    release.set()
    result = await asyncio.wait_for(tick, 30)
    assert result.succeeded == CONCURRENT
    await scheduler.log_shipper.ship()

    second = "warning" if op == "plain" else "info"
    for job_id, name in names.items():
        expected = [
            text for i in range(LINES) for text in (f"{name} direct {i}", f"{name} logged {i}")
        ]
        assert fake.log_lines[job_id] == expected, job_id
    levels = {line.level for _, request in fake.calls if _ == "logs" for line in request.lines}
    assert levels == {"info", second}


async def test_records_outside_a_job_belong_to_no_job(make_scheduler: MakeScheduler) -> None:
    fake = FakeCoordinator()
    scheduler = make_scheduler(fake, features=[m.FEATURE_LOGS])
    handler_log.info("the bot's own line")
    with capturing(JobLog("job_x", 1, scheduler.logs)):
        handler_log.info("in the job")
        handler_log.debug("below the level: not logged at all")
    assert [line.text for b in scheduler.logs.take(10, 10, 1000) for line in b.lines] == [
        "in the job"
    ]


def test_custom_levels_map_to_the_one_below() -> None:
    assert level_name(logging.INFO + 5) == "info"
    assert level_name(logging.ERROR) == "error"
    assert level_name(1) == "debug"


def test_job_log_refuses_an_unknown_level() -> None:
    with pytest.raises(ValueError, match="level must be one of"):
        Job("job_1", "sum", {}).log("x", level="loud")


async def test_shipping_keeps_lines_through_an_outage_and_drops_refused_batches(
    make_scheduler: MakeScheduler,
) -> None:
    fake = FakeCoordinator()
    scheduler = make_scheduler(fake, features=[m.FEATURE_LOGS])
    logs = scheduler.logs
    logs.write("job_1", 1, "info", "before the outage")
    fake.fail_next("logs", NetworkError("down"))
    await scheduler.log_shipper.ship()
    assert fake.log_lines == {} and len(logs) == 1  # kept for the next round
    logs.write("job_2", 1, "info", "not ours any more")
    await scheduler.log_shipper.ship()
    assert fake.log_lines == {"job_1": ["before the outage"], "job_2": ["not ours any more"]}

    fake.fail_next("logs", ConflictError("attempt not held"))
    logs.write("job_3", 1, "info", "refused")
    await scheduler.log_shipper.ship()
    assert "job_3" not in fake.log_lines and len(logs) == 0
    assert scheduler.log_shipper.refused_lines == 1


async def test_without_the_feature_no_line_is_kept(make_scheduler: MakeScheduler) -> None:
    fake = FakeCoordinator()
    scheduler = make_scheduler(fake, features=[])
    scheduler.logs.write("job_1", 1, "info", "nobody keeps this")
    await scheduler.log_shipper.ship()
    assert len(scheduler.logs) == 0 and not any(name == "logs" for name, _ in fake.calls)


async def test_a_full_buffer_ships_its_marker(make_scheduler: MakeScheduler) -> None:
    fake = FakeCoordinator()
    scheduler = make_scheduler(fake, features=[m.FEATURE_LOGS])
    logs = scheduler.logs
    for i in range(logs.capacity + 5):
        logs.write("job_1", 1, "info", f"{i}")
    await scheduler.log_shipper.ship()
    assert fake.log_lines["job_1"][-1] == dropped_marker(5)
    assert len(fake.log_lines["job_1"]) == logs.capacity + 1
    (last,) = [r for name, r in fake.calls if name == "logs" and r.dropped]
    assert last.dropped == 5


async def test_with_logs_bulk_several_jobs_share_one_call(make_scheduler: MakeScheduler) -> None:
    fake = FakeCoordinator()
    scheduler = make_scheduler(fake, features=[m.FEATURE_LOGS, m.FEATURE_LOGS_BULK])
    for n in range(3):
        scheduler.logs.write(f"job_{n}", 1, "info", f"line of {n}")
    fake.fail_next("logs_bulk", NetworkError("down"))
    await scheduler.log_shipper.ship()
    assert fake.log_lines == {}  # kept for the next round
    await scheduler.log_shipper.ship()
    assert fake.log_lines == {f"job_{n}": [f"line of {n}"] for n in range(3)}
    assert [name for name, _ in fake.calls].count("logs_bulk") == 2
    assert scheduler.log_shipper.sent_lines == 3


async def test_logs_that_cannot_be_sent_never_hold_a_report_back(
    make_scheduler: MakeScheduler, tmp_path: Path
) -> None:
    release = threading.Event()
    release.set()
    fake = FakeCoordinator()
    ids = [fake.add_job("chatty", {"name": f"h{n}"}) for n in range(2)]  # two slots
    scheduler = make_scheduler(
        fake,
        registry=registry_with_loggers(release),
        clock=ScaledClock(0.001),
        features=[m.FEATURE_LOGS, m.FEATURE_LOGS_BULK, m.FEATURE_BATCH_REPORT],
    )
    fake.fail_next("logs_bulk", *(NetworkError("logs down") for _ in range(5)))
    result = await asyncio.wait_for(scheduler.tick(), 30)
    assert (result.succeeded, result.delivered, result.kept) == (2, 2, 0)
    await scheduler.log_shipper.ship()  # the coordinator cannot take lines: they wait
    assert fake.log_lines == {} and len(scheduler.logs) == 2 * 2 * LINES
    for _ in range(5):
        await scheduler.log_shipper.ship()
    assert sorted(fake.log_lines) == sorted(ids)
