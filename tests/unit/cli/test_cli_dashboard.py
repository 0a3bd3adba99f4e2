"""`botfleet dashboard`: the signed-in link from the usual settings, handed to a browser."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from botfleet.cli.dashboard import run_dashboard_command
from botfleet.cli.errors import CliError
from botfleet.cli.main import build_parser, main


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["dashboard", *argv])


def test_the_link_comes_from_the_server_and_token_settings() -> None:
    opened: list[str] = []
    out = io.StringIO()
    environ = {"BOTFLEET_SERVER": "https://coord.example:8443/v1", "BOTFLEET_ADMIN_TOKEN": "t/k"}
    status = run_dashboard_command(
        _args(),
        environ,
        opener=lambda url: opened.append(url) or True,
        out=out,
    )
    assert status == 0
    assert opened == ["https://coord.example:8443/#token=t%2Fk"]
    assert out.getvalue() == "opened https://coord.example:8443/ in the browser, signed in\n"


def test_the_token_kept_in_the_state_folder_is_used(tmp_path: Path) -> None:
    (tmp_path / "admin_token").write_text("from-the-file\n")
    opened: list[str] = []
    run_dashboard_command(
        _args("--state-dir", str(tmp_path)),
        {},
        opener=lambda url: opened.append(url) or True,
        out=io.StringIO(),
    )
    assert opened == ["http://127.0.0.1:8000/#token=from-the-file"]


def test_no_browser_is_an_error_that_does_not_show_the_token() -> None:
    with pytest.raises(CliError) as raised:
        run_dashboard_command(
            _args("--admin-token", "hidden-token"),
            {},
            opener=lambda url: False,
            out=io.StringIO(),
        )
    assert "http://127.0.0.1:8000/" in str(raised.value)
    assert "hidden-token" not in str(raised.value)


def test_it_is_listed_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "    dashboard" in capsys.readouterr().out
