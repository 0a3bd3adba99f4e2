"""The generated reference names every command, flag, variable, route and message,
read from the definitions themselves (botfleet/reference)."""

from __future__ import annotations

import argparse

import pytest
from msgspec import inspect as mi

from bot import settings as bot_settings
from botfleet.cli.main import DELEGATED_PARSERS, build_parser
from botfleet.protocol.openapi import ROUTES, generate
from botfleet.reference import PAGES, UnknownReference, fill, render
from botfleet.reference.cli import cli_reference, commands
from botfleet.reference.http import http_reference, messages
from botfleet.reference.markdown import code, seconds_text, table
from botfleet.reference.settings import bot_variables, server_flags, settings_reference
from coordinator.config import ServerConfig


def subcommand_names(parser: argparse.ArgumentParser, prefix: str = "botfleet") -> list[str]:
    """Every sub-command, nested ones too, straight from argparse."""
    names = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                names.append(f"{prefix} {name}")
                names.extend(subcommand_names(sub, f"{prefix} {name}"))
    return names


def test_every_subcommand_has_a_section() -> None:
    text = cli_reference()
    names = subcommand_names(build_parser())
    assert {"botfleet server", "botfleet bot", "botfleet submit", "botfleet bots"} <= set(names)
    for name in names:
        assert f"\n## {name}\n" in text, name


def test_every_flag_of_every_command_is_listed() -> None:
    text = cli_reference()
    parsers = [command.parser for command in commands()]
    parsers += [make() for make in DELEGATED_PARSERS.values()]
    for parser in parsers:
        for action in parser._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    # first in its cell, or after another spelling: `--follow, -f`
                    assert f"`{flag}" in text or f", {flag}" in text, f"{parser.prog} {flag}"


def test_server_and_bot_use_their_own_parsers() -> None:
    found = {command.name: command.parser for command in commands()}
    assert "--drain-grace" in found["botfleet bot"]._option_string_actions
    assert "--db" in found["botfleet server"]._option_string_actions


def test_nested_commands_and_shared_options() -> None:
    root = argparse.ArgumentParser(prog="botfleet", description="Top.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--server", metavar="URL", help="where")
    subs = root.add_subparsers()
    tokens = subs.add_parser("tokens", parents=[common], help="manage tokens")
    actions = tokens.add_subparsers()
    create = actions.add_parser("create", parents=[common], help="make one")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--role", choices=["admin", "reader"], default="reader", help="its role")
    actions.add_parser("list", parents=[common], help="list them")

    text = cli_reference(root)

    for name in ("botfleet tokens", "botfleet tokens create", "botfleet tokens list"):
        assert f"\n## {name}\n" in text
    assert "| `--role ROLE` | `reader` | its role (one of `admin`, `reader`) |" in text
    assert "| `NAME` |  |  |" in text
    # The shared option is described once, not in every command.
    assert text.count("| `--server URL` |") == 1
    assert "Taken by `botfleet tokens`, `botfleet tokens create`, `botfleet tokens list`." in text


def test_every_bot_variable_with_its_default() -> None:
    text = settings_reference()
    defaults = bot_settings.Settings()
    assert {v.name for v in bot_variables()} >= set(bot_settings.VARIABLES)
    for name in bot_settings.VARIABLES:
        assert f"| `{name}` |" in text, name
    assert "| `MAX_CONCURRENCY` | `--max-concurrency` | `2` | jobs run at once |" in text
    assert f"| `BOT_LEASE_TTL_SEC` |  | `{defaults.bot_lease_ttl_s:g}` |" in text
    assert "| `BOT_ENROLL_TOKEN` |  | — |" in text


def test_every_server_flag_with_the_default_the_coordinator_runs_with() -> None:
    flags = {flag.flag: flag for flag in server_flags()}
    parser = DELEGATED_PARSERS["server"]()
    for action in parser._actions:
        if action.option_strings and action.option_strings[0] != "-h":
            assert any(key.startswith(f"`{action.option_strings[0]}") for key in flags)
    config = ServerConfig()
    assert flags["`--port PORT`"].default == f"`{config.port}`"
    assert flags["`--bot-lease-ttl S`"].default == "`120`"  # typed in seconds
    assert flags["`--retain-finished DURATION`"].default == "`7d`"  # typed as a duration
    assert flags["`--db URL`"].default == "`sqlite:///.state/botfleet.db`"
    assert flags["`--admin-token T`"].variable == "`BOTFLEET_ADMIN_TOKEN`"


def test_every_route_and_message() -> None:
    text = http_reference()
    for route in ROUTES:
        assert f"`{route.method.upper()} {route.path}`" in text
    for kind in messages():
        assert f"\n### {kind.__name__}\n" in text
        info = mi.type_info(kind)
        assert isinstance(info, mi.StructType)
        for field in info.fields:
            assert f"| `{field.encode_name}` |" in text, f"{kind.__name__}.{field.name}"


def test_everything_the_openapi_document_has() -> None:
    text = http_reference()
    document = generate()
    for path, operations in document["paths"].items():
        for method in operations:
            assert f"`{method.upper()} {path}`" in text
    for name in document["components"]["schemas"]:
        assert f"\n### {name}\n" in text, name


def test_message_fields_show_types_bounds_and_defaults() -> None:
    text = http_reference()
    assert "| `limit` | integer ≥ 1 ≤ 1000 | `1` |" in text
    assert "| `op` | string (1–100 characters) matching `^[A-Za-z0-9_.:-]+$` | required |" in text
    assert '`"drain"` / `"quarantine"` / `"release"` or null' in text
    assert "| `claim_id` | string (1–200 characters) | left out |" in text


def test_fill_replaces_markers_and_refuses_unknown_ones() -> None:
    page = "# Settings\n\nIntro.\n\n<!-- reference:settings -->\n"
    filled = fill(page)
    assert filled.startswith("# Settings\n\nIntro.\n\n## Bot environment\n")
    assert "<!-- reference" not in filled
    assert fill("no marker `<!-- reference:cli -->` inline") == (
        "no marker `<!-- reference:cli -->` inline"
    )
    with pytest.raises(UnknownReference, match="no reference 'clii'; there are: cli, http"):
        fill("<!-- reference:clii -->\n")
    assert set(PAGES) == {"cli", "http", "settings"}
    assert render("cli") == cli_reference()


def test_markdown_helpers() -> None:
    assert code("a`b") == "``a`b``"
    assert code("`x`") == "`` `x` ``"
    assert (
        table(["a", "b"], [["x|y", "one\ntwo"]]) == "| a | b |\n| --- | --- |\n| x\\|y | one two |"
    )
    assert [seconds_text(s) for s in (604_800, 7_200, 300, 30, 0.5, 90)] == [
        "7d",
        "2h",
        "5m",
        "30s",
        "0.5s",
        "90s",
    ]
