"""Real processes for end-to-end tests: a coordinator, bots, and waiting on events.

Tests wait for conditions (a port open, a state reached) with generous deadlines,
never for fixed sleeps.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import coverage

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
    "Unprivileged",
    "bot_state_dir",
    "can_drop_privileges",
    "free_port",
    "http_json",
    "logs_on_failure",
    "port_open",
    "start_bot",
    "start_coordinator",
    "unprivileged",
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
    ca_file: Path | None = None  # with --tls-cert: the CA callers trust

    @property
    def tls(self) -> bool:
        return "--tls-cert" in self.extra_args

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        return f"{self.url}/v1"

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def botfleet(self, *args: str, timeout_s: float = 60.0) -> str:
        """`botfleet …` as an operator on this machine runs it against this coordinator;
        its standard output (a non-zero exit fails the test with its stderr)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BOTFLEET_", "BOT_"))}
        env.update(BOTFLEET_SERVER=self.url, BOTFLEET_ADMIN_TOKEN=self.admin_token, COLUMNS="200")
        if self.ca_file is not None:
            env.update(BOTFLEET_CA_FILE=str(self.ca_file))
        done = subprocess.run(
            [sys.executable, "-m", "botfleet", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout_s,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        """One admin call under /v1; anything but a 2xx fails the test, naming the call."""
        context = None if self.ca_file is None else ssl.create_default_context(cafile=self.ca_file)
        status, answer = http_json(self.api + path, method, body, self.admin_token, context=context)
        assert 200 <= status < 300, f"{method} {path}: HTTP {status} {answer}"
        return answer

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
    ca_file: Path | None = None,
) -> Coordinator:
    state_dir = workdir / name
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # as the server keeps it
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
        process, port, admin_token, enroll_token, db_url, state_dir, extra_args or [], ca_file
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
    command_prefix: Sequence[str] = (),
) -> Process:
    """A `python -m bot` process; `servers` are API bases (`http://host:port/v1`).

    `command_prefix` runs it through another command (`Unprivileged.prefix`)."""
    state_dir = bot_state_dir(workdir, name)
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # as the bot keeps it
    bot_env = child_env(
        {
            "SERVER_BASE": ",".join(servers),
            "BOT_NAME": name,
            "BOT_STATE_DIR": str(state_dir),
            "BOT_ENROLL_TOKEN": enroll_token,
            **(env or {}),
        }
    )
    args = [*command_prefix, *python_module("bot", *(extra_args or []))]
    return Process(f"bot-{name}", args, workdir / f"bot-{name}.log", bot_env).start()


PROJECT = Path(__file__).resolve().parents[2]
NOBODY = 65534
"""Debian's `nobody` user and `nogroup` group."""


@dataclass(frozen=True)
class Unprivileged:
    """Where and how a child runs as a user whom file permissions bind.

    As root, children go through `setpriv` to nobody, in a folder of their own under the
    system's temporary folder (a pytest tmp_path sits in root's private folder); not as
    root, they run as they are, in the test's folder.
    """

    workdir: Path
    prefix: list[str]

    def own(self, path: Path) -> Path:
        """Make the folder `path` (created if needed) writable by the child's user."""
        path.mkdir(parents=True, exist_ok=True)
        if self.prefix:
            os.chown(path, NOBODY, NOBODY)
        return path


def can_drop_privileges() -> bool:
    return os.geteuid() != 0 or shutil.which("setpriv") is not None


@contextlib.contextmanager
def unprivileged(tmp_path: Path) -> Iterator[Unprivileged]:
    """An `Unprivileged` place; stop its children before leaving the block.

    On the way out, coverage data the children wrote goes beside this process's (where
    the end-of-run combine finds it), their logs are copied into `tmp_path`, and the
    folder is removed, so no file of another user stays behind.
    """
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0:
        yield Unprivileged(tmp_path, [])
        return
    if setpriv is None:
        raise RuntimeError("running as root without setpriv: cannot start a child as nobody")
    workdir = Path(tempfile.mkdtemp(prefix="botfleet-unprivileged-"))
    workdir.chmod(0o755)
    coverage_dir = workdir / "coverage"
    coverage_dir.mkdir()
    os.chown(coverage_dir, NOBODY, NOBODY)
    place = Unprivileged(
        workdir,
        [
            *_coverage_into(coverage_dir),
            setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--",
        ],
    )  # fmt: skip
    try:
        yield place
    finally:
        _collect_coverage(coverage_dir)
        for log in workdir.glob("*.log"):
            shutil.copy(log, tmp_path / log.name)
        shutil.rmtree(workdir)


def _coverage_into(coverage_dir: Path) -> list[str]:
    """An `env` prefix: coverage in the child writes its data into `coverage_dir`.

    The configuration coverage hands to children carries this process's data file, in a
    folder the user nobody cannot write, and it wins over COVERAGE_FILE; so the child reads the
    project's configuration from its file instead, where COVERAGE_FILE applies.
    """
    if "COVERAGE_PROCESS_CONFIG" not in os.environ:
        return []
    return [
        "env",
        "--unset=COVERAGE_PROCESS_CONFIG",
        f"COVERAGE_PROCESS_START={PROJECT / 'pyproject.toml'}",
        f"COVERAGE_FILE={coverage_dir / '.coverage'}",
    ]


def _collect_coverage(coverage_dir: Path) -> None:
    measuring = coverage.Coverage.current()
    if measuring is None:
        return
    data_file = Path(str(measuring.get_option("run:data_file"))).resolve()
    for part in coverage_dir.glob(".coverage.*"):
        target = data_file.with_name(data_file.name + part.name.removeprefix(".coverage"))
        shutil.copyfile(part, target)


def http_json(
    url: str,
    method: str = "GET",
    body: Any = None,
    token: str | None = None,
    timeout_s: float = 30.0,
    context: ssl.SSLContext | None = None,
) -> tuple[int, Any]:
    """One JSON request; (status, decoded body) for every status, errors included."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s, context=context) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read() or b"null")


@contextlib.contextmanager
def stopped_after(coordinator: Coordinator, bots: list[Process]) -> Iterator[None]:
    """Run the block with the processes' logs shown should it fail, then stop the bots
    (also those added to `bots` meanwhile) and the coordinator."""
    try:
        with logs_on_failure(lambda: [coordinator.process, *bots]):
            yield
    finally:
        for bot in bots:
            bot.stop()
        coordinator.process.stop()


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
