"""Log lines: readable or JSON, with the bot's and the job's id where they apply."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot.logging_setup import bot_context, configure_logging, job_context, make_handler

log = logging.getLogger("bot.test")


@pytest.fixture
def capture() -> Iterator[tuple[io.StringIO, list[logging.Handler]]]:
    stream = io.StringIO()
    handlers: list[logging.Handler] = []
    yield stream, handlers
    for handler in handlers:
        logging.getLogger().removeHandler(handler)


def test_text_lines_carry_bot_and_job_ids(
    capture: tuple[io.StringIO, list[logging.Handler]],
) -> None:
    stream, handlers = capture
    handlers.append(configure_logging("text", logging.INFO, stream))

    async def scenario() -> None:
        log.info("before registration")
        bot_context().bot_id = "bot_7"

        async def job() -> None:
            with job_context("job_3"):
                log.info("inside the job")
                await asyncio.to_thread(log.info, "in the handler's thread")
            log.info("after the job")

        await asyncio.create_task(job())

    asyncio.run(scenario())
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("bot.test: before registration")
    assert lines[1].endswith("inside the job [bot_id=bot_7 job_id=job_3]")
    assert lines[2].endswith("in the handler's thread [bot_id=bot_7 job_id=job_3]")
    assert lines[3].endswith("after the job [bot_id=bot_7]")
    assert " INFO " in lines[0]


def test_json_lines(capture: tuple[io.StringIO, list[logging.Handler]]) -> None:
    stream, handlers = capture
    handlers.append(configure_logging("json", logging.DEBUG, stream))

    async def scenario() -> None:
        bot_context().bot_id = "bot_9"
        with job_context("job_1"):
            try:
                raise ValueError("boom")
            except ValueError:
                log.exception("failed: %s", "x")

    asyncio.run(scenario())
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    (entry,) = [e for e in entries if e["logger"] == "bot.test"]
    assert entry["message"] == "failed: x" and entry["level"] == "error"
    assert entry["bot_id"] == "bot_9" and entry["job_id"] == "job_1"
    assert entry["logger"] == "bot.test" and "ValueError: boom" in entry["exception"]
    assert entry["ts"].endswith("+00:00")


def test_multi_line_text_keeps_tags_on_the_first_line() -> None:
    stream = io.StringIO()
    handler = make_handler("text", stream)
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "one\ntwo", None, None)
    record.bot_id = None

    async def scenario() -> None:
        bot_context().bot_id = "bot_1"
        handler.handle(record)

    asyncio.run(scenario())
    first, second = stream.getvalue().splitlines()
    assert first.endswith("one [bot_id=bot_1]") and second == "two"


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="text, json"):
        make_handler("xml")  # type: ignore[arg-type]
