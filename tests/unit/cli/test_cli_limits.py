"""`botfleet limits`: its usage errors (before any call), its rates and its table."""

from __future__ import annotations

import argparse

import pytest
from rich.console import Console

from botfleet.cli.errors import EXIT_USAGE
from botfleet.cli.limits import limits_table, rate
from botfleet.cli.main import main
from botfleet.protocol import limits as lim

# Nothing listens there: a usage error must come before any request.
NOWHERE = ["--server", "http://127.0.0.1:9", "--token", "t"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["limits", "set"], "give the limit's NAME"),
        (["limits", "set", "db"], "give --max-running N, --rate R/s, or both"),
        (["limits", "delete"], "give the limit's NAME"),
        (["limits", "list", "db"], "limits list takes no NAME"),
        (["limits", "set", "db", "--rate", "fast"], "--rate"),
    ],
)
def test_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, *NOWHERE]) == EXIT_USAGE
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "per_second"), [("5", 5.0), ("5/s", 5.0), ("0.5/s", 0.5), ("30/m", 0.5)]
)
def test_rates(text: str, per_second: float) -> None:
    assert rate(text) == per_second


@pytest.mark.parametrize("text", ["0/s", "-1", "5/week", "x/s"])
def test_bad_rates(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        rate(text)


def test_the_table_shows_running_against_the_caps() -> None:
    views = [
        lim.LimitView(
            name="db", max_running=2, running=2, tokens=1.0, starts_per_second=1.7, held_back=9000
        ),
        lim.LimitView(name="op:resize", per_second=0.5, burst=3, running=0, tokens=2.5),
    ]
    console = Console(width=200, record=True)
    console.print(limits_table(views))
    text = console.export_text()
    assert "2 limits" in text and "db" in text and "0.5/s" in text and "op:resize" in text
    assert "STARTED" in text and "1.7/s" in text and "HELD" in text and "9000" in text
