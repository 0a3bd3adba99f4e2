"""No secret is ever written to a log: a fleet runs at debug level, and every log,
standard output and standard error it produced is searched for each secret.

The coordinator (explicit admin and enrollment tokens), two bots and the command line
do what a fleet does: register, claim, report, list, a refused call, a revocation (a
revoked token's 401s and the 403 at registration), an allow, a drain. The bots reach
the coordinator through a proxy that notes every bot token it carries (`FaultProxy.
tokens`, no faults), since a bot keeps its token in memory only.

`secrets_to_find` lists what is searched for; a new kind of secret is one line there.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.machine import EXIT_OK, EXIT_REVOKED
from tests.e2e.faultproxy import FaultProxy, Faults
from tests.support.processes import (
    Coordinator,
    Process,
    logs_on_failure,
    start_bot,
    start_coordinator,
    wait_until,
)

pytestmark = pytest.mark.e2e

DEADLINE_S = 60.0
DEBUG = ["--log-level", "debug"]
TIMING = ["--bot-lease-ttl", "6", "--heartbeat-interval", "1", "--reaper-interval", "0.25"]


@dataclass
class Fleet:
    workdir: Path
    coordinator: Coordinator
    proxy: FaultProxy
    bots: dict[str, Process] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)  # every command line run's stdout+stderr
    role_tokens: dict[str, str] = field(default_factory=dict)  # name -> secret, made by the test

    def issue_token(self, name: str, role: str) -> str:
        """A role token made over the API (not `botfleet tokens create`, whose output is
        the secret itself)."""
        secret: str = self.coordinator.admin("POST", "/tokens", {"name": name, "role": role})[
            "token"
        ]
        self.role_tokens[name] = secret
        return secret

    def start_bot(self, name: str) -> Process:
        bot = start_bot(
            self.workdir,
            [self.proxy.api],
            name,
            enroll_token=self.coordinator.enroll_token,
            extra_args=DEBUG,
        )
        self.bots[name] = bot
        return bot

    def botfleet(self, *args: str, expect: int = 0) -> str:
        """`botfleet …` as an operator runs it (token from BOTFLEET_ADMIN_TOKEN); both its
        streams are kept for the search."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BOTFLEET_", "BOT_"))}
        env.update(
            BOTFLEET_SERVER=self.coordinator.url,
            BOTFLEET_ADMIN_TOKEN=self.coordinator.admin_token,
            COLUMNS="200",
        )
        done = subprocess.run(
            [sys.executable, "-m", "botfleet", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=DEADLINE_S,
            check=False,
        )
        self.outputs.append(done.stdout + done.stderr)
        assert done.returncode == expect, (args, done.stdout, done.stderr)
        return done.stdout

    def bot_id(self, name: str) -> str:
        for line in self.botfleet("bots").splitlines():
            if f" {name} " in f" {line} ":
                return line.split()[0]
        return ""

    def processes(self) -> list[Process]:
        return [self.coordinator.process, *self.bots.values()]


def secrets_to_find(fleet: Fleet) -> dict[str, str]:
    """What must never be in a log, by what it is."""
    coordinator = fleet.coordinator
    found = {
        "the admin token": coordinator.admin_token,
        "the enrollment token": coordinator.enroll_token,
    }
    bot_tokens = sorted(fleet.proxy.tokens - set(found.values()))
    for number, token in enumerate(bot_tokens, start=1):
        found[f"bot token {number}"] = token
        found[f"the secret of bot token {number}"] = token.rpartition(".")[2]
    for name, secret in fleet.role_tokens.items():
        found[f"the role token {name}"] = secret
    return found


def everything_written(fleet: Fleet) -> dict[str, str]:
    """Every log file of the run, and every command line output."""
    written = {path.name: path.read_text(errors="replace") for path in fleet.workdir.glob("*.log")}
    written.update({f"botfleet call {n}": text for n, text in enumerate(fleet.outputs, 1)})
    return written


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    coordinator = start_coordinator(
        tmp_path,
        extra_args=[*TIMING, *DEBUG],
        admin_token=secrets.token_urlsafe(32),
        enroll_token=secrets.token_urlsafe(32),
    )
    with FaultProxy(coordinator.url, Faults(), seed=1) as proxy:
        fleet = Fleet(tmp_path, coordinator, proxy)
        try:
            with logs_on_failure(fleet.processes):
                yield fleet
        finally:
            for bot in fleet.bots.values():
                bot.stop()
            coordinator.process.stop()


def test_no_secret_is_written_to_any_log(fleet: Fleet) -> None:
    for name in ("alpha", "beta"):
        fleet.start_bot(name)
    wait_until(lambda: bool(fleet.bot_id("alpha") and fleet.bot_id("beta")), DEADLINE_S, "both")
    fleet.botfleet("submit", "sum", "a=1", "b=2", "--count", "6", "--wait")
    job_id = json.loads(fleet.botfleet("jobs", "--json"))["jobs"][0]["id"]
    fleet.botfleet("job", job_id)
    fleet.botfleet("job", "job_missing", expect=1)
    fleet.botfleet("stats")
    fleet.botfleet("bots", "--json")
    fleet.botfleet("jobs", "--admin-token", "not-the-token", expect=1)
    producer = fleet.issue_token("ci", "producer")
    fleet.botfleet("submit", "sum", "a=2", "b=3", "--wait", "--token", producer)
    reader = fleet.issue_token("wallboard", "reader")
    fleet.botfleet("stats", "--token", reader)
    fleet.botfleet("submit", "sum", "a=2", "b=3", "--token", reader, expect=1)  # 403
    token_id = fleet.coordinator.admin("GET", "/tokens")["tokens"][0]["id"]
    fleet.coordinator.admin("DELETE", f"/tokens/{token_id}")
    fleet.botfleet("jobs", "--token", producer, expect=1)  # revoked: 401

    beta = fleet.bot_id("beta")
    fleet.botfleet("bots", "revoke", beta)
    assert fleet.bots["beta"].wait(DEADLINE_S) == EXIT_REVOKED
    fleet.botfleet("bots", "allow", beta)
    fleet.bots["alpha"].signal(signal.SIGTERM)
    assert fleet.bots["alpha"].wait(DEADLINE_S) == EXIT_OK
    fleet.coordinator.process.stop()

    found = secrets_to_find(fleet)
    # each bot's token was seen at least once; and the two role tokens
    assert len(found) >= 2 + 2 * 2 + 2, found.keys()
    written = everything_written(fleet)
    assert {"coordinator.log", "bot-alpha.log", "bot-beta.log"} <= written.keys()
    assert "DEBUG" in written["coordinator.log"] and "DEBUG" in written["bot-alpha.log"]
    # The search reads the right text: the public half of each bot token, its bot id, is
    # in the bots' logs.
    everything = "\n".join(written.values())
    bot_tokens = fleet.proxy.tokens - {
        fleet.coordinator.admin_token,
        fleet.coordinator.enroll_token,
    }
    assert all(token.rpartition(".")[0] in everything for token in bot_tokens)
    leaks = [
        f"{what} in {where}"
        for what, secret in found.items()
        for where, text in written.items()
        if secret in text
    ]
    assert leaks == []
