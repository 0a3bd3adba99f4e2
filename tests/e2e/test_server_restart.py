"""The coordinator as a real process: 1,000 jobs survive a SIGKILL; SIGTERM stops it cleanly;
with no tokens given it generates them into its state folder and says where."""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import (
    Coordinator,
    Process,
    free_port,
    port_open,
    start_coordinator,
    wait_until,
)

pytestmark = pytest.mark.e2e

JOBS = 1000


def _call(
    url: str, token: str, method: str = "GET", body: Any = None, timeout_s: float = 60
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def _all_jobs(coordinator: Coordinator) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    cursor = ""
    while True:
        query = "limit=1000" + (f"&cursor={cursor}" if cursor else "")
        status, page = _call(f"{coordinator.api}/jobs?{query}", coordinator.admin_token)
        assert status == 200, page
        jobs += page["jobs"]
        if not page["next_cursor"]:
            return jobs
        cursor = page["next_cursor"]


def test_a_thousand_jobs_survive_sigkill(tmp_path: Path) -> None:
    coordinator = start_coordinator(tmp_path)
    try:
        batch = [{"op": "sum", "payload": {"a": i, "b": 1}, "priority": i % 3} for i in range(JOBS)]
        status, created = _call(
            f"{coordinator.api}/jobs/bulk", coordinator.admin_token, "POST", {"jobs": batch}
        )
        assert status == 201, created
        ids = created["ids"]
        assert len(set(ids)) == JOBS

        coordinator.process.kill()
        assert not port_open(coordinator.port)
        coordinator.restart()

        jobs = {job["id"]: job for job in _all_jobs(coordinator)}
        assert set(jobs) == set(ids)
        for i, job_id in enumerate(ids):
            job = jobs[job_id]
            assert (job["op"], job["state"], job["attempt"]) == ("sum", "queued", 0)
            assert job["payload"] == {"a": i, "b": 1}
            assert job["priority"] == i % 3
        status, one = _call(f"{coordinator.api}/jobs/{ids[-1]}", coordinator.admin_token)
        assert status == 200 and one["payload"] == {"a": JOBS - 1, "b": 1}
    finally:
        coordinator.process.stop()


def test_sigterm_stops_gracefully_and_answers_waiting_claims(tmp_path: Path) -> None:
    coordinator = start_coordinator(tmp_path)
    try:
        wait_until(
            lambda: "botfleet coordinator listening on" in coordinator.process.log(),
            what="the listening line",
        )
        assert f"listening on http://127.0.0.1:{coordinator.port}" in coordinator.process.log()
        register = {"bot_key": "k", "instance_id": "i", "version": "1.0.0", "capabilities": ["x"]}
        status, bot = _call(
            f"{coordinator.api}/bots/register", coordinator.enroll_token, "POST", register
        )
        assert status == 201, bot
        claim = {"bot_id": bot["bot_id"], "operations": ["x"], "wait_ms": 30_000}
        answers: list[tuple[int, Any]] = []
        waiting = threading.Thread(
            target=lambda: answers.append(
                _call(
                    f"{coordinator.api}/jobs/claim",
                    bot["auth"]["access_token"],
                    "POST",
                    claim,
                )
            )
        )
        waiting.start()
        wait_until(
            lambda: "botfleet_waiting_requests 1.0" in _metrics(coordinator),
            what="the claim to wait",
        )
        coordinator.process.signal(signal.SIGTERM)
        waiting.join(60)
        assert answers == [(200, {"jobs": []})]
        assert coordinator.process.wait() == 0
    finally:
        coordinator.process.stop()


def _metrics(coordinator: Coordinator) -> str:
    with urllib.request.urlopen(f"{coordinator.url}/metrics", timeout=10) as response:
        return str(response.read().decode())


def test_generated_tokens_are_kept_and_announced(tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "state"
    args = [sys.executable, "-m", "coordinator", "--port", str(port), "--state-dir", str(state)]
    # No token in the environment either: the coordinator must make its own.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "BOTFLEET_"))}
    env["PYTHONUNBUFFERED"] = "1"
    process = Process("coordinator", args, tmp_path / "coordinator.log", env).start()
    try:
        wait_until(lambda: port_open(port) or not process.alive(), what="the coordinator")
        assert process.alive(), process.log()
        admin_file = state / "admin_token"
        assert stat.S_IMODE(admin_file.stat().st_mode) == 0o600
        assert stat.S_IMODE((state / "enroll_token").stat().st_mode) == 0o600
        assert str(admin_file.resolve()) in process.log()
        token = admin_file.read_text().strip()
        assert _call(f"http://127.0.0.1:{port}/v1/stats", token)[0] == 200
        assert _call(f"http://127.0.0.1:{port}/v1/stats", token + "x")[0] == 401
        # At rest, all of it private to this user (the umask notwithstanding).
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        database = [state / f"botfleet.db{suffix}" for suffix in ("", "-wal", "-shm")]
        assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in database} == {
            p.name: 0o600 for p in database
        }
        # Standard output is a file, not a terminal: the dashboard link comes without the token.
        assert "(`botfleet dashboard` opens it signed in)" in process.log()
        assert token not in process.log()
    finally:
        process.stop()
