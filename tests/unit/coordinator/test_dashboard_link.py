"""The dashboard link the server prints: signed in for a terminal only, never logged."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from botfleet.cli.dashboard import signed_in_link
from coordinator.dashboard.link import announce_dashboard, browsable_base, kept_admin_token

TOKEN = "s3cr/et+token=="


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_the_link_that_signs_in(caplog: pytest.LogCaptureFixture) -> None:
    out = Terminal()
    with caplog.at_level(logging.DEBUG):
        announce_dashboard("http://127.0.0.1:8000", TOKEN, out)
    assert out.getvalue() == (
        "botfleet coordinator: dashboard http://127.0.0.1:8000/#token=s3cr%2Fet%2Btoken%3D%3D\n"
    )
    assert caplog.records == []  # printed, never logged


def test_anything_else_gets_the_plain_link_and_the_command_that_signs_in() -> None:
    out = io.StringIO()  # a pipe, a file, a journal
    announce_dashboard("http://127.0.0.1:8000", TOKEN, out)
    assert out.getvalue() == (
        "botfleet coordinator: dashboard http://127.0.0.1:8000/ "
        "(`botfleet dashboard` opens it signed in)\n"
    )
    assert "token" not in out.getvalue().replace("botfleet dashboard", "")


def test_the_token_travels_in_the_fragment_only() -> None:
    link = signed_in_link("https://coord.example:8443/", "a b&c")
    assert link == "https://coord.example:8443/#token=a%20b%26c"
    assert "?" not in link


@pytest.mark.parametrize(
    ("host", "base"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000"),
        ("0.0.0.0", "http://127.0.0.1:8000"),
        ("::", "http://[::1]:8000"),
        ("::1", "http://[::1]:8000"),
        ("[::1]", "http://[::1]:8000"),
        ("fd00::7", "http://[fd00::7]:8000"),
        ("coord.example", "http://coord.example:8000"),
    ],
)
def test_the_link_names_an_address_a_browser_here_can_open(host: str, base: str) -> None:
    assert browsable_base("http", host, 8000) == base


def test_the_admin_token_is_the_given_one_or_the_kept_one(tmp_path: Path) -> None:
    kept = tmp_path / "admin_token"
    kept.write_text("kept-token\n")
    assert kept_admin_token("given", kept) == "given"
    assert kept_admin_token(None, kept) == "kept-token"
    assert kept_admin_token(None, tmp_path / "missing") is None
    assert kept_admin_token(None, None) is None
