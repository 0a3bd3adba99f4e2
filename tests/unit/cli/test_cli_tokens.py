"""`botfleet tokens`: its usage errors (before any call) and its table."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rich.console import Console

from botfleet.cli.errors import EXIT_USAGE
from botfleet.cli.main import main
from botfleet.cli.tokens import tokens_table
from botfleet.protocol import messages as m

# Nothing listens there: a usage error must come before any request.
NOWHERE = ["--server", "http://127.0.0.1:9", "--token", "t"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tokens", "create"], "give the new token's NAME"),
        (["tokens", "create", "ci"], "give its --role (admin, operator, producer, reader, enroll)"),
        (["tokens", "revoke"], "give the token's ID or NAME"),
        (["tokens", "list", "ci"], "tokens list takes no name"),
    ],
)
def test_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, *NOWHERE]) == EXIT_USAGE
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tokens", "create", "ci", "--role", "root"], "invalid choice: 'root'"),
        (["tokens", "create", "ci", "--role", "reader", "--expires", "soon"], "--expires"),
    ],
)
def test_bad_flags(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, *NOWHERE]) == EXIT_USAGE
    assert message in capsys.readouterr().err


def test_the_table_shows_expiry_and_use_relative_to_now() -> None:
    now = datetime(2026, 1, 19, 12, 0, tzinfo=UTC)
    tokens = [
        m.TokenView(
            id="tok_1",
            name="ci",
            role="producer",
            created_at="2026-01-19T10:00:00Z",
            expires_at="2026-02-18T12:00:00Z",
            last_used_at="2026-01-19T11:59:00Z",
        ),
        m.TokenView(id="tok_2", name="dash", role="reader", created_at="2026-01-19T11:00:00Z"),
    ]
    console = Console(width=200, record=True)
    console.print(tokens_table(tokens, now))
    text = console.export_text()
    assert "2 tokens" in text
    assert "tok_1" in text and "producer" in text and "in 30.0d" in text and "1m ago" in text
    assert "never" in text
