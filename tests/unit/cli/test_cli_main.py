"""The command line's arguments, usage errors and delegation, without a server."""

from __future__ import annotations

import argparse
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from botfleet.cli.errors import EXIT_ERROR, EXIT_USAGE
from botfleet.cli.jobs import jobs_from_args
from botfleet.cli.main import build_parser, main


def _one_error_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert "Traceback" not in text
    return lines[-1]


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("server", "bot", "submit", "jobs", "job", "cancel", "retry", "bots", "stats"):
        assert f"    {command}" in out
    assert "demo" in out


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == EXIT_USAGE
    assert "usage: botfleet" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["submit"], "the following arguments are required: OP"),
        (["submit", "sum", "--count", "0"], "--count: must be at least 1"),
        (["submit", "sum", "--delay", "-1"], "--delay: must be 0 or more"),
        (["submit", "sum", "--requires", "gpu"], "--requires: 'gpu' is not key=value"),
        (["submit", "sum", "--requires", "gpu="], "--requires: 'gpu=' is not key=value"),
        (["jobs", "--state", "lost"], "invalid choice: 'lost'"),
        (["bots", "evict", "bot_1"], "invalid choice: 'evict'"),
        (["demo", "--bots", "0"], "--bots: must be between 1 and 50"),
    ],
)
def test_argument_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == EXIT_USAGE
    assert message in _one_error_line(capsys.readouterr().err)


def test_bot_action_without_an_id(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bots", "pause", "--admin-token", "t", "--server", "http://127.0.0.1:9"]) == 2
    assert _one_error_line(capsys.readouterr().err) == (
        "botfleet: error: bots pause: which bot? give its ID (see `botfleet bots`)"
    )


def test_key_value_and_payload_together(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["submit", "sum", "a=1", "--payload", "{}", "--admin-token", "t"]
    assert main([*argv, "--server", "http://127.0.0.1:9"]) == EXIT_USAGE
    assert "not both" in _one_error_line(capsys.readouterr().err)


def test_missing_token_is_explained(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["jobs", "--state-dir", str(tmp_path)]) == EXIT_USAGE
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("botfleet: error: no admin token")


def test_unreachable_server_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.support.processes import free_port

    server = f"http://127.0.0.1:{free_port()}"
    assert main(["stats", "--server", server, "--admin-token", "t"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"cannot reach the coordinator at {server} (connection refused)" in err


def _submit_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["submit", *argv])


def test_submit_builds_one_job_per_count() -> None:
    args = _submit_args(
        "sum", "a=1", "b=x", "--count", "3", "--priority", "5", "--delay", "1.5",
        "--max-attempts", "2", "--job-timeout", "9", "--idempotency-key", "k",
    )  # fmt: skip
    jobs = jobs_from_args(args)
    assert len(jobs) == 3
    assert {job.op for job in jobs} == {"sum"}
    assert all(job.payload == {"a": 1, "b": "x"} for job in jobs)
    assert [job.idempotency_key for job in jobs] == ["k:0", "k:1", "k:2"]
    assert {(job.priority, job.delay_ms, job.max_attempts, job.timeout_s) for job in jobs} == {
        (5, 1500, 2, 9.0)
    }


def test_submit_defaults_leave_the_server_defaults() -> None:
    (job,) = jobs_from_args(_submit_args("sum", "--payload", '{"a": 1}', "--idempotency-key", "k"))
    assert (job.payload, job.priority, job.delay_ms, job.max_attempts) == ({"a": 1}, 0, None, 3)
    assert job.idempotency_key == "k"


def test_submit_requires_labels_and_a_key_again_allows_another_value() -> None:
    args = _submit_args(
        "sum", "--requires", "gpu=a100", "--requires", "region=eu", "--requires", "gpu=h100",
        "--count", "2",
    )  # fmt: skip
    jobs = jobs_from_args(args)
    assert [job.requires for job in jobs] == [{"gpu": ["a100", "h100"], "region": "eu"}] * 2
    (plain,) = jobs_from_args(_submit_args("sum"))
    assert plain.requires is None


@pytest.fixture
def fake_server_module(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[argparse.Namespace]]:
    seen: list[argparse.Namespace] = []

    def add_server_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--port", type=int, default=8000)

    def run_server(args: argparse.Namespace) -> int:
        seen.append(args)
        return 7

    module = types.ModuleType("coordinator.server")
    module.add_server_arguments = add_server_arguments  # type: ignore[attr-defined]
    module.run_server = run_server  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "coordinator.server", module)
    yield seen


def test_server_hands_its_arguments_over(fake_server_module: list[argparse.Namespace]) -> None:
    assert main(["server", "--port", "9001"]) == 7
    assert fake_server_module[0].port == 9001


def test_missing_delegate_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "bot.main", None)  # makes `import bot.main` fail
    assert main(["bot", "--name", "x"]) == EXIT_ERROR
    assert _one_error_line(capsys.readouterr().err).startswith(
        "botfleet: error: the bot agent is not available here"
    )
