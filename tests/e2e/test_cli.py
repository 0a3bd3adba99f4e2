"""The `botfleet` command line as a person runs it, against a real coordinator process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import (
    Coordinator,
    free_port,
    port_open,
    start_bot,
    start_coordinator,
    wait_until,
)

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def error_line(self) -> str:
        """A failure is exactly one line on stderr, never a traceback."""
        assert "Traceback" not in self.err, self.err
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, self.err
        return lines[0]


def run(*args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Result:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BOTFLEET_", "BOT_"))}
    clean.pop("SERVER_BASE", None)
    clean.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", "botfleet", *args],
        capture_output=True,
        text=True,
        env=clean,
        cwd=cwd,
        timeout=120,
    )
    return Result(done.returncode, done.stdout, done.stderr)


@dataclass(frozen=True)
class Cli:
    coordinator: Coordinator

    @property
    def env(self) -> dict[str, str]:
        return {
            "BOTFLEET_SERVER": self.coordinator.url,
            "BOTFLEET_ADMIN_TOKEN": self.coordinator.admin_token,
        }

    def __call__(self, *args: str) -> Result:
        return run(*args, env=self.env)

    def ok(self, *args: str) -> Result:
        result = self(*args)
        assert result.code == 0, result
        return result

    def job(self, job_id: str) -> dict[str, Any]:
        view: dict[str, Any] = self.ok("job", job_id, "--json").json()
        return view


@pytest.fixture(scope="module")
def coordinator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coordinator]:
    server = start_coordinator(tmp_path_factory.mktemp("cli"))
    yield server
    server.process.stop()


@pytest.fixture
def cli(coordinator: Coordinator) -> Cli:
    return Cli(coordinator)


def test_submit_with_key_value_fields(cli: Cli) -> None:
    result = cli.ok("submit", "sum", "a=1", "b=2.5", "note=hello", "tags=[1,2]")
    job_id = result.out.strip()
    assert job_id.startswith("job_")
    job = cli.job(job_id)
    assert job["op"] == "sum"
    assert job["payload"] == {"a": 1, "b": 2.5, "note": "hello", "tags": [1, 2]}
    assert job["state"] == "queued"


def test_submit_with_payload_json_and_options(cli: Cli) -> None:
    args = ["subtract", "--payload", '{"a": 5, "b": "3"}', "--priority", "7"]
    args += ["--max-attempts", "2", "--delay", "600", "--json"]
    answer = cli.ok("submit", *args).json()
    job = cli.job(answer["ids"][0])
    assert job["payload"] == {"a": 5, "b": "3"}
    assert (job["priority"], job["max_attempts"]) == (7, 2)
    assert job["run_at"] > job["created_at"]


def test_idempotency_key_returns_the_first_job(cli: Cli) -> None:
    first = cli.ok("submit", "sum", "a=1", "--idempotency-key", "cli-once").out.strip()
    again = cli.ok("submit", "sum", "a=2", "--idempotency-key", "cli-once").out.strip()
    assert first == again


def test_submit_many_goes_in_bulk_chunks(cli: Cli) -> None:
    result = cli.ok("submit", "bulkop", "x=1", "--count", "1500", "--json")
    ids = result.json()["ids"]
    assert len(set(ids)) == 1500
    stats = cli.ok("stats", "--json").json()
    assert stats["jobs_by_op"]["bulkop"]["queued"] == 1500
    text = cli.ok("submit", "bulkop", "x=2", "--count", "3").out
    assert text.startswith("submitted 3 bulkop jobs: job_")


def test_jobs_lists_newest_first_with_filters(cli: Cli) -> None:
    first = cli.ok("submit", "listing", "n=1").out.strip()
    second = cli.ok("submit", "listing", "n=2").out.strip()
    table = cli.ok("jobs", "--op", "listing")
    assert table.out.index(second) < table.out.index(first)
    assert "queued" in table.out
    page = cli.ok("jobs", "--op", "listing", "--limit", "1")
    assert second in page.out
    assert first not in page.out
    assert "more: botfleet jobs --cursor" in page.err
    listed = cli.ok("jobs", "--op", "listing", "--state", "queued", "--json").json()
    assert [job["id"] for job in listed["jobs"]] == [second, first]
    assert (
        "no jobs with state=running op=listing"
        in cli.ok("jobs", "--op", "listing", "--state", "running").err
    )


def test_job_detail(cli: Cli) -> None:
    job_id = cli.ok("submit", "detail", "a=1").out.strip()
    text = cli.ok("job", job_id).out
    assert job_id in text
    assert '{"a":1}' in text
    assert "queued" in text


def test_cancel_and_retry(cli: Cli) -> None:
    job_id = cli.ok("submit", "cancellable", "a=1").out.strip()
    assert cli.ok("cancel", job_id).out.strip() == f"{job_id} cancelled"
    again = cli("cancel", job_id)
    assert again.code == 1
    assert again.error_line.startswith("botfleet: error: conflict: ")
    assert "HTTP 409" in again.error_line
    assert cli.ok("retry", job_id).out.strip() == f"{job_id} queued"
    assert cli.job(job_id)["state"] == "queued"


def test_unknown_ids_are_one_line_404s(cli: Cli) -> None:
    for args in (("job", "job_nope"), ("cancel", "job_nope"), ("bots", "pause", "bot_nope")):
        result = cli(*args)
        assert result.code == 1
        assert result.error_line.startswith("botfleet: error: not found: ")
        assert "HTTP 404" in result.error_line


def test_stats(cli: Cli) -> None:
    cli.ok("submit", "counted", "a=1")
    text = cli.ok("stats").out
    for heading in ("Jobs", "Jobs by operation", "Bots", "Throughput over the last"):
        assert heading in text
    assert "counted" in text
    stats = cli.ok("stats", "--json").json()
    assert stats["jobs"]["queued"] >= 1


def _register_bare_bot(coordinator: Coordinator, name: str) -> str:
    """A bot with no agent behind it: the register call a bare client makes."""
    import urllib.request

    body = {
        "bot_key": f"cli-test:{name}",
        "instance_id": f"{name}-1",
        "version": "1.0.0",
        "capabilities": ["sum"],
        "meta": {"hostname": "cli-test", "name": name},
    }
    request = urllib.request.Request(
        f"{coordinator.api}/bots/register",
        data=json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {coordinator.enroll_token}",
            "Content-Type": "application/json",
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        bot_id: str = json.loads(response.read())["bot_id"]
        return bot_id


def test_bots_list_pause_resume_drain(cli: Cli, coordinator: Coordinator) -> None:
    bot_id = _register_bare_bot(coordinator, "bare-one")
    listing = cli.ok("bots")
    assert bot_id in listing.out
    assert "online" in listing.out

    paused = cli.ok("bots", "pause", bot_id)
    assert "pause" in paused.out
    assert "paused" in paused.out
    bots = {bot["id"]: bot for bot in cli.ok("bots", "--json").json()["bots"]}
    assert bots[bot_id]["assignment"]["paused"] is True

    cli.ok("bots", "resume", bot_id)
    resumed = cli.ok("bots", "resume", bot_id, "--json").json()
    assert resumed["assignment"]["paused"] is False

    drained = cli.ok("bots", "drain", bot_id)
    assert "command drain is sent with its next heartbeat" in drained.out


def test_wrong_token_is_one_line(cli: Cli, coordinator: Coordinator) -> None:
    result = run("jobs", env={**cli.env, "BOTFLEET_ADMIN_TOKEN": "wrong"})
    assert result.code == 1
    assert result.error_line.startswith("botfleet: error: the coordinator rejected the token")
    flag = run("stats", "--admin-token", "wrong", "--server", coordinator.url)
    assert flag.code == 1
    assert "HTTP 401" in flag.error_line


def test_unreachable_server_is_one_line() -> None:
    server = f"http://127.0.0.1:{free_port()}"
    for args in (("jobs",), ("submit", "sum", "a=1"), ("bots",), ("stats",)):
        result = run(*args, "--server", server, "--admin-token", "t")
        assert result.code == 1
        assert result.error_line == (
            f"botfleet: error: cannot reach the coordinator at {server} (connection refused); "
            "is `botfleet server` running? (set --server or BOTFLEET_SERVER)"
        )


def test_usage_errors_exit_2(cli: Cli) -> None:
    result = cli("submit", "sum", "a")
    assert result.code == 2
    assert result.error_line == "botfleet: error: payload field 'a': write key=value, e.g. a=1"
    assert cli("jobs", "--limit", "zero").code == 2


def test_token_from_the_servers_state_folder(tmp_path: Path) -> None:
    """`botfleet server` with no token generates one; operator commands then need no flag."""
    port = free_port()
    args = [sys.executable, "-m", "botfleet", "server", "--host", "127.0.0.1"]
    args += ["--port", str(port), "--enroll-token", "e"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOTFLEET_", "BOT_"))}
    log_path = tmp_path / "server.log"
    with log_path.open("ab") as log:
        server = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: port_open(port) or server.poll() is not None, what="server listening")
        assert server.poll() is None, log_path.read_text()
        assert (tmp_path / ".state" / "admin_token").exists()
        result = run("stats", "--json", "--server", f"127.0.0.1:{port}", cwd=tmp_path)
        assert result.code == 0, result
        assert "jobs" in result.json()
        elsewhere = run("stats", "--server", f"127.0.0.1:{port}", cwd=tmp_path / ".state")
        assert elsewhere.code == 2
        assert elsewhere.error_line.startswith("botfleet: error: no admin token")
    finally:
        server.terminate()
        server.wait(30)


@pytest.fixture
def cli_with_bot(tmp_path: Path) -> Iterator[Cli]:
    server = start_coordinator(tmp_path)
    bot = start_bot(tmp_path, [server.api], "cli-waiter")
    try:
        yield Cli(server)
    finally:
        bot.stop()
        server.process.stop()


def test_submit_wait_shows_the_outcome(cli_with_bot: Cli) -> None:
    cli = cli_with_bot
    single = cli.ok("submit", "sum", "a=1", "b=2", "--wait")
    assert "succeeded" in single.out
    assert '{"result":3}' in single.out

    as_json = cli.ok("submit", "subtract", "a=5", "b=3", "--wait", "--json").json()
    assert (as_json["state"], as_json["result"]) == ("succeeded", {"result": 2})

    many = cli.ok("submit", "subtract", "a=5", "b=3", "--count", "30", "--wait")
    assert "30 jobs" in many.out
    assert "succeeded" in many.out

    bad = cli("submit", "sum", "a=seven", "b=1", "--wait", "--max-attempts", "1")
    assert bad.code == 3
    assert "failed" in bad.out
    assert "seven" in bad.out
    assert "Traceback" not in bad.err
