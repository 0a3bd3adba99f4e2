"""Every setting with its default, read from where each is defined: the bot's environment
variables (bot/settings.py) and flags (bot/main.py), the coordinator's flags
(coordinator/server.py) with the defaults of its configuration (coordinator/config.py),
and the variables the command line and the client read."""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from bot import settings as bot_settings
from botfleet import eventloop
from botfleet.cli import settings as cli_settings
from botfleet.cli.main import bot_parser, build_parser, server_parser
from botfleet.client import settings as client_settings
from botfleet.reference.cli import argument_text, documented_actions, help_text
from botfleet.reference.markdown import code, seconds_text, table
from coordinator import server as coordinator_server
from coordinator.config import ServerConfig

# Variables of the bot that have no flag, hence no help text to borrow: what they do.
# (A variable with a flag takes its flag's help.)
BOT_VARIABLE_NOTES: Mapping[str, str] = {
    "HEARTBEAT_INTERVAL_SEC": "seconds between heartbeats, until the coordinator says "
    "otherwise; shorter than the bot lease",
    "BOT_LEASE_TTL_SEC": "the bot lease in seconds, until the coordinator says otherwise",
    "JOB_LEASE_TTL_SEC": "the job lease in seconds, until the coordinator says otherwise",
    "CLAIM_BATCH_SIZE": "most jobs asked for in one claim (1–100), until the coordinator "
    "says otherwise",
    "MIN_BACKOFF_MS": "the first wait after a failed call to the coordinator",
    "MAX_BACKOFF_MS": "the longest such wait (full jitter in between)",
    "BOT_VERSION": "the version the bot registers with (X.Y.Z)",
    "BOT_ENROLL_TOKEN": "the enrollment token the bot registers with",
    "BOT_CIRCUIT_THRESHOLD": "failed calls in a row to the coordinator that open the "
    "circuit (DEGRADED_NET)",
    "BOT_CA_FILE": "a CA bundle trusted besides the system's, for an https:// SERVER_BASE",
    "BOT_CLIENT_CERT": "the bot's client certificate, for a coordinator that requires mutual TLS",
    "BOT_CLIENT_KEY": "the key of BOT_CLIENT_CERT",
    "BOT_LABELS": "labels that jobs can require, key=value,…",
    "BOT_PREFETCH": "auto, 0, or N: jobs claimed beyond the free slots",
    "BOT_PREFETCH_HOLD_MS": "a prefetched job not started within this many ms goes back "
    "to the queue",
}
# Variables the command line and the client read that no flag describes.
CLIENT_VARIABLE_NOTES: Mapping[str, str] = {
    "BOTFLEET_TOKEN": "the token of the client and of the operator commands (any role)",
    "BOTFLEET_ADMIN_TOKEN": "the admin token; read when BOTFLEET_TOKEN is not set",
}
# Server flags whose default the configuration resolves under another name.
_CONFIG_ALIASES: Mapping[str, str] = {"db": "database_url"}
_ENV_MENTION = re.compile(r"\benv ([A-Z][A-Z0-9_]+)")
_BRACKETED = re.compile(r"\s*\[[A-Z][A-Z0-9_]*(?:, [^\]]*)?\]\s*$")
EVENT_LOOP_NOTE = "the event loop of the coordinator and the bot: " + ", ".join(eventloop.CHOICES)


@dataclass(frozen=True, slots=True)
class Variable:
    name: str
    flag: str  # empty when none sets it
    default: str
    what: str


def value_text(value: object, seconds: bool = False) -> str:
    """A default as a reader types it; `—` for none."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return code("true" if value else "false")
    if seconds and isinstance(value, int | float):
        return code(seconds_text(float(value)))
    if isinstance(value, float):
        return code(f"{value:g}")
    if isinstance(value, tuple | list):
        return code(",".join(map(str, value))) if value else "—"
    if isinstance(value, Path):
        return code(str(value))
    return code(str(value))


def _flag_helps(parser: argparse.ArgumentParser) -> dict[str, str]:
    return {
        flag: help_text(parser, action)
        for action in documented_actions(parser)
        for flag in action.option_strings
    }


def bot_variables() -> list[Variable]:
    """Every variable the bot reads (bot/settings.py), with its flag and default."""
    defaults = bot_settings.Settings()
    helps = _flag_helps(bot_parser())
    found = []
    # `_VARIABLES` maps each variable to the settings field it sets: where its default is.
    for name, (field, _) in bot_settings._VARIABLES.items():
        flag = bot_settings.FLAG_FOR.get(name, "")
        what = _BRACKETED.sub("", helps.get(flag, "")) or BOT_VARIABLE_NOTES.get(name, "")
        found.append(Variable(name, flag, value_text(getattr(defaults, field)), what))
    found.append(Variable(eventloop.ENV_VAR, "", code(eventloop.CHOICES[0]), EVENT_LOOP_NOTE))
    return found


@dataclass(frozen=True, slots=True)
class Flag:
    flag: str  # as typed: `--port PORT`
    variable: str
    default: str
    what: str


def server_flags() -> list[Flag]:
    """Every flag of `botfleet server`, with the default the coordinator then runs with."""
    parser = server_parser()
    config = coordinator_server.config_from_args(parser.parse_args([]), {})
    found = []
    for action in documented_actions(parser):
        what = help_text(parser, action)
        mention = _ENV_MENTION.search(what)
        found.append(
            Flag(
                code(argument_text(action)),
                code(mention.group(1)) if mention else "",
                _server_default(config, action),
                what,
            )
        )
    return found


def _server_default(config: ServerConfig, action: argparse.Action) -> str:
    dest = action.dest
    # A flag parsed as a plain number is typed in seconds; one of the duration flags
    # (`7d`, `5m`) reads best as a duration.
    as_duration = action.type not in (None, int, float)
    for name in (_CONFIG_ALIASES.get(dest, ""), dest, f"{dest}_s", f"{dest}_url"):
        if name and hasattr(config, name):
            return value_text(getattr(config, name), seconds=as_duration and name.endswith("_s"))
    if action.nargs == 0:
        return value_text(bool(action.default))
    plain = isinstance(action.default, str | int | float | list | tuple)
    return value_text(action.default if plain else None)


def _module_variables(module: ModuleType) -> dict[str, str | None]:
    """`ENV_X = "NAME"` constants of a module, each with its `DEFAULT_X` if it has one."""
    found: dict[str, str | None] = {}
    for attribute, value in vars(module).items():
        if attribute.startswith("ENV_") and isinstance(value, str):
            default = getattr(module, "DEFAULT_" + attribute.removeprefix("ENV_"), None)
            found[value] = default if isinstance(default, str) else None
    return found


def _environment_table(
    modules: Sequence[ModuleType],
    parsers: Sequence[argparse.ArgumentParser],
    notes: Mapping[str, str],
) -> list[Variable]:
    """The variables the modules name (`ENV_…`), each with the flag whose help mentions it."""
    variables: dict[str, str | None] = {}
    for module in modules:
        for name, default in _module_variables(module).items():
            variables[name] = variables.get(name) or default
    mentions: dict[str, tuple[str, str]] = {}
    for parser in parsers:
        for action in documented_actions(parser):
            what = help_text(parser, action)
            for name in _ENV_MENTION.findall(what):
                mentions.setdefault(name, (action.option_strings[0], what))
    return [
        Variable(
            name,
            mentions.get(name, ("", ""))[0],
            value_text(default),
            mentions.get(name, ("", ""))[1] or notes.get(name, ""),
        )
        for name, default in variables.items()
    ]


def coordinator_variables() -> list[Variable]:
    found = _environment_table([coordinator_server], [server_parser()], {})
    found.append(Variable(eventloop.ENV_VAR, "", code(eventloop.CHOICES[0]), EVENT_LOOP_NOTE))
    return found


def client_variables() -> list[Variable]:
    operator = next(
        sub
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
        for name, sub in action.choices.items()
        if name == "jobs"
    )
    return _environment_table([client_settings, cli_settings], [operator], CLIENT_VARIABLE_NOTES)


def _variable_rows(variables: Sequence[Variable]) -> list[list[str]]:
    return [[code(v.name), code(v.flag) if v.flag else "", v.default, v.what] for v in variables]


def settings_reference() -> str:
    """The Markdown of every variable and flag, each with its default."""
    header = ["variable", "flag", "default", "what"]
    parts = [
        "## Bot environment",
        "",
        "Read once when the bot starts (`botfleet bot`, `python -m bot`). A flag overrides "
        "its variable; values the coordinator sends override both while the bot runs.",
        "",
        table(header, _variable_rows(bot_variables())),
        "",
        "## Coordinator flags",
        "",
        "`botfleet server` (also `python -m coordinator`). The default is the value the "
        "coordinator runs with when the flag and its variable are not given; durations are "
        "`500ms`, `30s`, `5m`, `2h`, `7d` or bare seconds.",
        "",
        table(
            ["flag", "variable", "default", "what"],
            [[f.flag, f.variable, f.default, f.what] for f in server_flags()],
        ),
        "",
        "## Coordinator environment",
        "",
        table(header, _variable_rows(coordinator_variables())),
        "",
        "## Command line and client environment",
        "",
        "Read by the operator commands (`botfleet submit`, `jobs`, `bots`, …) and by "
        "`botfleet.client` when the argument or flag is not given.",
        "",
        table(header, _variable_rows(client_variables())),
    ]
    return "\n".join(parts) + "\n"
