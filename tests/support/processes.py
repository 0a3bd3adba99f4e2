"""Real processes for end-to-end tests: a coordinator, bots, and waiting on events.

Tests wait for conditions (a port open, a state reached) with generous deadlines,
never for fixed sleeps.
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botfleet.processes import (
    DEADLINE_S,
    ChildProcess,
    child_env,
    free_port,
    port_open,
    python_module,
    wait_until,
    wait_until_async,
)

__all__ = [
    "DEADLINE_S",
    "Coordinator",
    "Process",
    "bot_state_dir",
    "free_port",
    "http_json",
    "logs_on_failure",
    "port_open",
    "start_bot",
    "start_coordinator",
    "wait_until",
    "wait_until_async",
]


class Process(ChildProcess):
    """A child process whose output goes to a log file, stopped for sure at the end."""

    def stop(self, grace_s: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not leave in time (tests allow 30 s)."""
        return super().stop(grace_s)


@dataclass
class Coordinator:
    process: Process
    port: int
    admin_token: str
    enroll_token: str
    db_url: str
    state_dir: Path
    extra_args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        return f"{self.url}/v1"

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def restart(self) -> Coordinator:
        """Start again on the same port and database (after stop or kill)."""
        self.process = Process(
            self.process.name, self.process.args, self.process.log_path, self.process.env
        ).start()
        wait_until(lambda: port_open(self.port), what=f"{self.process.name} listening")
        return self


def start_coordinator(
    workdir: Path,
    name: str = "coordinator",
    db_url: str | None = None,
    port: int | None = None,
    extra_args: list[str] | None = None,
    admin_token: str = "admin-secret",
    enroll_token: str = "enroll-secret",
) -> Coordinator:
    state_dir = workdir / name
    state_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    db_url = db_url or f"sqlite:///{state_dir / 'botfleet.db'}"
    args = python_module(
        "coordinator",
        "--host", "127.0.0.1", "--port", str(port), "--db", db_url,
        "--state-dir", str(state_dir),
        "--admin-token", admin_token, "--enroll-token", enroll_token,
        *(extra_args or []),
    )  # fmt: skip
    process = Process(name, args, workdir / f"{name}.log", child_env()).start()
    try:
        wait_until(
            lambda: port_open(port) or not process.alive(), what=f"{name} listening on {port}"
        )
    finally:
        if not process.alive():
            raise RuntimeError(f"{name} exited at start:\n{process.log()}")
    return Coordinator(
        process, port, admin_token, enroll_token, db_url, state_dir, extra_args or []
    )


def bot_state_dir(workdir: Path, name: str) -> Path:
    """Where `start_bot(workdir, ..., name)` keeps the bot's identity and outbox."""
    return workdir / f"bot-{name}"


def start_bot(
    workdir: Path,
    servers: list[str],
    name: str,
    enroll_token: str = "enroll-secret",
    env: Mapping[str, str] | None = None,
    extra_args: list[str] | None = None,
) -> Process:
    """A `python -m bot` process; `servers` are API bases (`http://host:port/v1`)."""
    state_dir = bot_state_dir(workdir, name)
    state_dir.mkdir(parents=True, exist_ok=True)
    bot_env = child_env(
        {
            "SERVER_BASE": ",".join(servers),
            "BOT_NAME": name,
            "BOT_STATE_DIR": str(state_dir),
            "BOT_ENROLL_TOKEN": enroll_token,
            **(env or {}),
        }
    )
    args = python_module("bot", *(extra_args or []))
    return Process(f"bot-{name}", args, workdir / f"bot-{name}.log", bot_env).start()


def http_json(
    url: str,
    method: str = "GET",
    body: Any = None,
    token: str | None = None,
    timeout_s: float = 30.0,
) -> tuple[int, Any]:
    """One JSON request; (status, decoded body) for every status, errors included."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read() or b"null")


@contextlib.contextmanager
def logs_on_failure(
    processes: Callable[[], Iterable[Process]], tail_lines: int = 200
) -> Iterator[None]:
    """When the block raises, print the end of each process's log and re-raise.

    pytest shows a failed test's output, so the logs land next to the failure.
    `processes` is called only then (a restarted coordinator is a new `Process`).
    """
    try:
        yield
    except BaseException:
        for process in processes():
            lines = process.log().splitlines()[-tail_lines:]
            print(f"----- {process.name} ({process.log_path}), last {len(lines)} lines -----")
            print("\n".join(lines))
        raise
