"""The systemd units of deploy/ run real commands with real settings.

Each ExecStart is a `botfleet` subcommand whose flags that command's own parser takes;
each unit's EnvironmentFile has an example beside it, naming only variables the program
reads, with values its settings accept; and `systemd-analyze verify` accepts the units
where it is installed.
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import io
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import pytest

from bot.agent.shutdown import EXIT_BAD_SETTINGS, EXIT_REVOKED, EXIT_SAFE_HALT
from bot.settings import load_settings
from botfleet.cli.main import DELEGATED_PARSERS
from botfleet.reference.settings import bot_variables, coordinator_variables
from coordinator.server import config_from_args

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
UNITS = sorted(DEPLOY.glob("*.service"))
INSTANCE = "worker1"  # what %i stands for in a template unit here
# The contract's TLS names. A build without them yet checks them by name only; a build
# with them parses them like every other flag and variable.
TLS_FLAGS = ("--tls-cert", "--tls-key", "--tls-client-ca")
TLS_VARIABLES = ("BOT_CA_FILE", "BOT_CLIENT_CERT", "BOT_CLIENT_KEY")


def read_unit(path: Path) -> configparser.RawConfigParser:
    unit = configparser.RawConfigParser(strict=False, interpolation=None, delimiters=("=",))
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    unit.read_string(path.read_text(encoding="utf-8"), source=str(path))
    return unit


def specifiers(text: str) -> str:
    return text.replace("%i", INSTANCE).replace("%%", "%")


def exec_start(path: Path) -> list[str]:
    return shlex.split(specifiers(read_unit(path)["Service"]["ExecStart"]))


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip()
    return env


def env_example(path: Path) -> Path:
    """deploy/botfleet-bot@.service -> deploy/botfleet-bot.env."""
    return DEPLOY / (path.stem.rstrip("@") + ".env")


def without_flags(argv: list[str], flags: Sequence[str]) -> list[str]:
    """`argv` without the `flags` and the value each takes."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in flags:
            skip = True
        else:
            kept.append(arg)
    return kept


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    unknown_tls = [flag for flag in TLS_FLAGS if flag not in parser._option_string_actions]
    kept = without_flags(argv, unknown_tls)
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            return parser.parse_args(kept)
    except SystemExit:
        pytest.fail(f"{parser.prog} rejects {shlex.join(kept)}: {errors.getvalue()}")


def test_there_are_units_for_the_coordinator_and_a_bot() -> None:
    assert [path.name for path in UNITS] == [
        "botfleet-bot@.service",
        "botfleet-coordinator.service",
    ]


@pytest.mark.parametrize("path", UNITS, ids=lambda path: path.name)
def test_exec_start_is_a_botfleet_command_its_parser_takes(path: Path) -> None:
    argv = exec_start(path)
    assert PurePosixPath(argv[0]).name == "botfleet", argv
    assert argv[1] in DELEGATED_PARSERS, f"{argv[1]!r} is not a command that runs a process"
    parse(DELEGATED_PARSERS[argv[1]](), argv[2:])


@pytest.mark.parametrize("path", UNITS, ids=lambda path: path.name)
def test_the_environment_file_has_an_example_of_known_variables(path: Path) -> None:
    service = read_unit(path)["Service"]
    assert PurePosixPath(specifiers(service["EnvironmentFile"])).suffix == ".env"
    env = read_env_file(env_example(path))
    command = exec_start(path)[1]
    known = {v.name for v in (bot_variables() if command == "bot" else coordinator_variables())}
    pending = {name for name in TLS_VARIABLES if name not in known}
    assert set(env) - known - pending == set()


def test_the_bot_example_settings_load() -> None:
    env = read_env_file(DEPLOY / "botfleet-bot.env")
    known = {v.name for v in bot_variables()}
    # The certificate files belong to the machine deployed to; the TLS tests check those.
    settings = load_settings({k: v for k, v in env.items() if k in known - set(TLS_VARIABLES)})
    unit = DEPLOY / "botfleet-bot@.service"
    args = parse(DELEGATED_PARSERS["bot"](), exec_start(unit)[2:])
    service = read_unit(unit)["Service"]
    # The state folder systemd makes is the one the bot keeps its identity and outbox in.
    assert Path(args.state_dir) == Path("/var/lib") / specifiers(service["StateDirectory"])
    assert args.name == INSTANCE
    # systemd waits for the drain (and the last reports) before it kills the bot.
    assert float(service["TimeoutStopSec"]) > settings.drain_grace_s + 10
    assert service["KillSignal"] == "SIGTERM"


def test_the_bot_unit_restarts_only_what_a_restart_can_fix() -> None:
    service = read_unit(DEPLOY / "botfleet-bot@.service")["Service"]
    assert service["Restart"] == "on-failure"
    # Bad settings, a safe halt and a revoked bot exit the same way after a restart.
    person_needed = {EXIT_BAD_SETTINGS, EXIT_SAFE_HALT, EXIT_REVOKED}
    assert {int(status) for status in service["RestartPreventExitStatus"].split()} == (
        person_needed
    )


def test_the_coordinator_example_settings_load() -> None:
    unit = DEPLOY / "botfleet-coordinator.service"
    # The certificate files belong to the machine deployed to; the TLS tests check those.
    args = parse(DELEGATED_PARSERS["server"](), without_flags(exec_start(unit)[2:], TLS_FLAGS))
    config = config_from_args(args, read_env_file(DEPLOY / "botfleet-coordinator.env"))
    assert config.admin_token and config.enroll_token
    assert config.state_dir == Path("/var/lib") / read_unit(unit)["Service"]["StateDirectory"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    # verify checks that the program exists: point ExecStart at this installation's.
    botfleet = Path(sys.executable).parent / "botfleet"
    assert botfleet.exists(), f"{botfleet}: install the package (make .venv/.installed)"
    copies = []
    for path in UNITS:
        name = path.name.replace("@.", f"@{INSTANCE}.")
        text = re.sub(r"^ExecStart=\S+", f"ExecStart={botfleet}", path.read_text(), flags=re.M)
        (tmp_path / name).write_text(text, encoding="utf-8")
        copies.append(str(tmp_path / name))
    done = subprocess.run(
        ["systemd-analyze", "verify", *copies],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
