"""Role tokens end to end: `botfleet tokens …` against a real coordinator, the token it
prints used by the other commands, and a revocation that holds at once on every
coordinator process sharing a PostgreSQL database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.processes import Coordinator, http_json, logs_on_failure, start_coordinator

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


def botfleet(coordinator: Coordinator, *args: str, **env: str) -> Ran:
    """`botfleet …` with only the server's address in the environment, plus `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BOTFLEET_", "BOT_"))}
    clean.update(BOTFLEET_SERVER=coordinator.url, COLUMNS="200", **env)
    done = subprocess.run(
        [sys.executable, "-m", "botfleet", *args],
        capture_output=True,
        text=True,
        env=clean,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return Ran(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[Coordinator]:
    started = start_coordinator(tmp_path)
    try:
        with logs_on_failure(lambda: [started.process]):
            yield started
    finally:
        started.process.stop()


def test_tokens_create_list_use_and_revoke(coordinator: Coordinator) -> None:
    admin = coordinator.admin_token
    created = botfleet(
        coordinator, "tokens", "create", "ci", "--role", "producer", "--expires", "30d",
        "--admin-token", admin,
    )  # fmt: skip
    assert created.code == 0, created.err
    secret = created.out.strip()
    assert secret.startswith("bft_") and "\n" not in secret  # the secret alone on stdout
    assert "token ci (tok_" in created.err and "not shown again" in created.err
    assert secret not in created.err

    listed = botfleet(coordinator, "tokens", BOTFLEET_TOKEN=admin)
    assert listed.code == 0, listed.err
    assert "ci" in listed.out and "producer" in listed.out and "in 30.0d" in listed.out
    assert secret not in listed.out
    as_json = json.loads(botfleet(coordinator, "tokens", "--json", "--token", admin).out)
    assert [(t["name"], t["role"]) for t in as_json["tokens"]] == [("ci", "producer")]

    # The producer's token works with --token and with BOTFLEET_TOKEN, on its own jobs.
    submitted = botfleet(coordinator, "submit", "sum", "a=1", "b=2", "--json", "--token", secret)
    assert submitted.code == 0, submitted.err
    own_id = json.loads(submitted.out)["ids"][0]
    coordinator.admin("POST", "/jobs", {"op": "sum"})  # someone else's job
    jobs = json.loads(botfleet(coordinator, "jobs", "--json", BOTFLEET_TOKEN=secret).out)
    assert [job["id"] for job in jobs["jobs"]] == [own_id]
    assert jobs["jobs"][0]["submitted_by"] == "ci"
    refused = botfleet(coordinator, "bots", "--token", secret)
    assert refused.code == 1
    assert "needs one of the roles admin, operator, reader" in refused.err

    revoked = botfleet(coordinator, "tokens", "revoke", "ci", "--token", admin)
    assert revoked.code == 0, revoked.err
    assert "token ci (tok_" in revoked.out and "revoked" in revoked.out
    after = botfleet(coordinator, "jobs", "--token", secret)
    assert after.code == 1
    assert "'ci' was revoked" in after.err and "token_revoked" in after.err
    gone = botfleet(coordinator, "tokens", "revoke", "ci", "--token", admin)
    assert gone.code == 1 and "no token 'ci'" in gone.err


def test_a_revocation_holds_at_once_on_every_coordinator(tmp_path: Path, pg_database: str) -> None:
    coordinators = [
        start_coordinator(tmp_path, name, db_url=pg_database)
        for name in ("coordinator-1", "coordinator-2")
    ]
    one, two = coordinators
    try:
        with logs_on_failure(lambda: [c.process for c in coordinators]):
            created = one.admin("POST", "/tokens", {"name": "ops", "role": "operator"})
            status, _ = http_json(two.api + "/bots", token=created["token"])
            assert status == 200
            one.admin("DELETE", f"/tokens/{created['id']}")
            # The very next call, through the other process: no cache to wait out.
            status, answer = http_json(two.api + "/bots", token=created["token"])
            assert (status, answer["error"]["code"]) == (401, "token_revoked")
    finally:
        for coordinator in coordinators:
            coordinator.process.stop()
