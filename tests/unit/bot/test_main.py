"""The command line: flags onto settings, bad settings exit 2 with the variable named."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from bot.main import add_bot_arguments, flags_from, main, run_bot

ROOT = Path(__file__).resolve().parents[3]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_bot_arguments(parser)
    return parser.parse_args(argv)


def test_flags_map_onto_the_variables() -> None:
    args = parse(
        "--server", "http://a/v1", "http://b/v1", "--server", "http://c/v1",
        "--name", "w1", "--state-dir", "/tmp/s", "--plugins", "x,y",
        "--max-concurrency", "3", "--metrics-port", "9100", "--log-format", "json",
        "--drain-grace", "7.5", "--crash-loop-limit", "4",
        "--ca-file", "ca.pem", "--client-cert", "bot.pem", "--client-key", "bot.key",
        "--label", "gpu=a100", "--label", "region=eu",
    )  # fmt: skip
    assert flags_from(args) == {
        "SERVER_BASE": "http://a/v1,http://b/v1,http://c/v1",
        "BOT_NAME": "w1",
        "BOT_STATE_DIR": "/tmp/s",
        "BOT_PLUGINS": "x,y",
        "MAX_CONCURRENCY": "3",
        "BOT_METRICS_PORT": "9100",
        "BOT_DRAIN_GRACE_SEC": "7.5",
        "BOT_CRASH_LOOP_LIMIT": "4",
        "BOT_CA_FILE": "ca.pem",
        "BOT_CLIENT_CERT": "bot.pem",
        "BOT_CLIENT_KEY": "bot.key",
        "BOT_LABELS": "gpu=a100,region=eu",
    }
    assert args.log_format == "json"
    assert flags_from(parse())["SERVER_BASE"] is None


def test_bad_flag_exits_2_naming_it(caplog: pytest.LogCaptureFixture) -> None:
    assert main(["--max-concurrency", "0"]) == 2
    assert "--max-concurrency (MAX_CONCURRENCY): must be between 1 and 10000" in caplog.text


def test_a_malformed_label_exits_2_naming_the_variable(caplog: pytest.LogCaptureFixture) -> None:
    assert run_bot(parse(), env={"BOT_LABELS": "gpu"}) == 2
    assert "BOT_LABELS: 'gpu' is not key=value" in caplog.text
    assert main(["--label", "gpu="]) == 2
    assert "--label (BOT_LABELS): 'gpu=' is not key=value" in caplog.text


def test_bad_environment_exits_2_naming_it(caplog: pytest.LogCaptureFixture) -> None:
    assert run_bot(parse(), env={"HEARTBEAT_INTERVAL_SEC": "often"}) == 2
    assert "HEARTBEAT_INTERVAL_SEC: must be a number of seconds" in caplog.text


def test_bad_plugin_module_exits_2(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    args = parse("--state-dir", str(tmp_path), "--plugins", "surely_not_a_module_here")
    assert run_bot(args, env={}) == 2
    assert "BOT_PLUGINS: cannot import 'surely_not_a_module_here'" in caplog.text


def test_unknown_log_format_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as caught:
        parse("--log-format", "xml")
    assert caught.value.code == 2


@pytest.mark.parametrize(
    "command", [[sys.executable, "-m", "bot"], [sys.executable, str(ROOT / "bin" / "bot.py")]]
)
def test_entry_points_show_help(command: list[str]) -> None:
    result = subprocess.run(
        [*command, "--help"], capture_output=True, text=True, timeout=60, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "--max-concurrency" in result.stdout and "SERVER_BASE" in result.stdout


def test_unknown_event_loop_exits_2_naming_it(caplog: pytest.LogCaptureFixture) -> None:
    assert run_bot(parse(), env={"BOTFLEET_EVENT_LOOP": "tokio"}) == 2
    assert "BOTFLEET_EVENT_LOOP='tokio': expected one of auto, uvloop, asyncio" in caplog.text
