"""`botfleet schedules`: its usage errors (before any call) and its table."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rich.console import Console

from botfleet.cli.errors import EXIT_USAGE
from botfleet.cli.main import main
from botfleet.cli.schedules import schedules_table
from botfleet.protocol import schedules as wire

# Nothing listens there: a usage error must come before any request.
NOWHERE = ["--server", "http://127.0.0.1:9", "--token", "t"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["schedules", "add", "tick", "--every", "1m"], "the following arguments are required"),
        (["schedules", "add", "tick", "sum"], "give --cron EXPR or --every DURATION"),
        (["schedules", "add", "tick", "sum", "--every", "1500ms"], "whole seconds"),
        (
            ["schedules", "add", "tick", "sum", "a=1", "--payload", "{}", "--every", "1s"],
            "not both",
        ),
        (["schedules", "pause"], "the following arguments are required: NAME"),
        (["schedules", "delete", "tick", "extra"], "unrecognized arguments: extra"),
        (["schedules", "list", "tick"], "unrecognized arguments: tick"),
        (["schedules", "stop", "tick"], "invalid choice: 'stop'"),
    ],
)
def test_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, *NOWHERE]) == EXIT_USAGE
    assert message in capsys.readouterr().err


def test_cron_and_every_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["schedules", "add", "t", "sum", "--cron", "* * * * *", "--every", "5s"]
    assert main([*argv, *NOWHERE]) == EXIT_USAGE
    assert "not allowed with argument" in capsys.readouterr().err


def test_the_table_shows_when_next_run_and_last_job() -> None:
    now = datetime(2026, 1, 19, 12, 0, tzinfo=UTC)
    schedules = [
        wire.ScheduleView(
            name="nightly",
            cron="30 2 * * *",
            timezone="Europe/Paris",
            job={"op": "report"},
            next_run_at="2026-01-20T01:30:00Z",
            last_due_at="2026-01-19T01:30:00Z",
            last_job_id="job_1",
            created_at="2026-01-12T09:00:00Z",
            updated_at="2026-01-12T09:00:00Z",
        ),
        wire.ScheduleView(
            name="probe",
            every_s=30,
            job={"op": "ping"},
            paused=True,
            created_at="2026-01-19T11:00:00Z",
            updated_at="2026-01-19T11:00:00Z",
        ),
    ]
    console = Console(width=200, record=True)
    console.print(schedules_table(schedules, now))
    text = console.export_text()
    assert "2 schedules" in text
    assert "cron 30 2 * * * (Europe/Paris)" in text and "in 13.5h" in text
    assert "job_1" in text and "10.5h ago" in text and "report" in text
    assert "every 30s" in text and "paused" in text and "ping" in text
