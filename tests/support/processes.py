"""Real processes for end-to-end tests: a coordinator, bots, and waiting on events.

Tests wait for conditions (a port open, a state reached) with generous deadlines,
never for fixed sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEADLINE_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    condition: Callable[[], bool], timeout: float = DEADLINE_S, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.02)


async def wait_until_async(
    condition: Callable[[], Awaitable[bool]],
    deadline_s: float = DEADLINE_S,
    what: str = "condition",
) -> None:
    deadline = time.monotonic() + deadline_s
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {deadline_s:.0f}s waiting for {what}")
        await asyncio.sleep(0.02)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


@dataclass
class Process:
    """A child process whose output goes to a log file, stopped for sure at the end."""

    name: str
    args: list[str]
    log_path: Path
    env: dict[str, str]
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.args, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, signum: int) -> None:
        if self.alive():
            assert self.popen is not None
            self.popen.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL: the crash the system must survive."""
        self.signal(signal.SIGKILL)
        self.wait(30)

    def wait(self, timeout: float = DEADLINE_S) -> int:
        assert self.popen is not None
        return self.popen.wait(timeout)

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, then SIGKILL if it does not leave in time."""
        if self.popen is None:
            return None
        if self.alive():
            self.popen.terminate()
            try:
                return self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        return self.popen.wait(timeout)


def _env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "BOTFLEET_"))}
    env.pop("SERVER_BASE", None)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


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
    args = [
        sys.executable, "-m", "coordinator",
        "--host", "127.0.0.1", "--port", str(port), "--db", db_url,
        "--state-dir", str(state_dir),
        "--admin-token", admin_token, "--enroll-token", enroll_token,
        *(extra_args or []),
    ]  # fmt: skip
    process = Process(name, args, workdir / f"{name}.log", _env({})).start()
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
    bot_env = _env(
        {
            "SERVER_BASE": ",".join(servers),
            "BOT_NAME": name,
            "BOT_STATE_DIR": str(state_dir),
            "BOT_ENROLL_TOKEN": enroll_token,
            **(env or {}),
        }
    )
    args = [sys.executable, "-m", "bot", *(extra_args or [])]
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
