"""Log lines: readable or JSON, carrying bot and job ids where they apply."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from botfleet.logs import bot_context, configure_logging, job_context, make_handler


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("botfleet.test.logs")
    log.propagate = False
    log.setLevel(logging.INFO)
    yield log
    log.handlers.clear()


def test_json_lines_carry_the_ids(logger: logging.Logger) -> None:
    stream = io.StringIO()
    logger.addHandler(make_handler("json", stream))
    bot_context().bot_id = "bot_1"
    with job_context("job_9"):
        logger.info("ran %s", "sum")
    logger.warning("idle", extra={"job_id": "job_explicit"})
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "ran sum" and first["level"] == "info"
    assert (first["bot_id"], first["job_id"]) == ("bot_1", "job_9")
    assert second["job_id"] == "job_explicit"


def test_text_lines_are_readable_and_tagged(logger: logging.Logger) -> None:
    stream = io.StringIO()
    logger.addHandler(make_handler("text", stream))
    with job_context("job_3"):
        logger.error("boom")
    line = stream.getvalue().strip()
    assert "ERROR" in line
    assert "boom [" in line and "job_id=job_3" in line


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="log format"):
        make_handler("yaml")  # type: ignore[arg-type]


def test_configure_logging_installs_one_root_handler() -> None:
    root = logging.getLogger()
    handler = configure_logging("json", logging.DEBUG, io.StringIO())
    try:
        assert handler in root.handlers and root.level == logging.DEBUG
        assert logging.getLogger("aiohttp").level == logging.WARNING
    finally:
        root.removeHandler(handler)
        root.setLevel(logging.WARNING)
