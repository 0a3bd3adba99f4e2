"""Child processes (a coordinator, bots, helpers): started with their output in a log file,
waited for with a deadline, and stopped for sure.

`botfleet demo`, the end-to-end tests and the benchmarks all start and stop processes
through this module. Each child runs in its own session, so a Ctrl-C in the terminal
reaches only the parent, which then stops its children in the order it chooses: SIGTERM
first, SIGKILL to the child's whole session once a grace period has passed. Optionally
(the demo) Linux also sends the child SIGTERM when the parent dies without cleaning up
(PR_SET_PDEATHSIG). Children inherit the environment, so coverage's subprocess hook
measures them too. Waits poll a condition until a deadline; none sleeps a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import functools
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Self

log = logging.getLogger(__name__)

LOCALHOST = "127.0.0.1"
DEADLINE_S = 60.0
"""How long a wait lasts unless told otherwise: generous, it only bounds a failure."""
POLL_S = 0.02
STOP_GRACE_S = 15.0
KILLED_WAIT_S = 30.0
"""How long to wait for a SIGKILLed process to be gone (moments, unless the machine is stuck)."""

_PR_SET_PDEATHSIG = 1


class ChildExited(RuntimeError):
    """A child process ended while it should be running."""


# ---------------------------------------------------------------- ports and waiting


def free_port(host: str = LOCALHOST) -> int:
    """A port nothing listens on now (another process may still take it before the child)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = LOCALHOST) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def wait_until(
    condition: Callable[[], bool],
    timeout_s: float = DEADLINE_S,
    what: str = "condition",
    interval_s: float = POLL_S,
    *,
    error: Callable[[str], Exception] = TimeoutError,
) -> None:
    """Poll `condition` until it holds; past `timeout_s` raise `error` naming `what`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise error(_timed_out(timeout_s, what))
        time.sleep(interval_s)


async def wait_until_async(
    condition: Callable[[], Awaitable[bool]],
    timeout_s: float = DEADLINE_S,
    what: str = "condition",
    interval_s: float = POLL_S,
) -> None:
    """`wait_until` for a condition that must be awaited; raises TimeoutError."""
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError(_timed_out(timeout_s, what))
        await asyncio.sleep(interval_s)


def _timed_out(timeout_s: float, what: str) -> str:
    return f"timed out after {timeout_s:.0f} s waiting for {what}"


# ---------------------------------------------------------------- commands and environment


def python_module(module: str, *args: str) -> list[str]:
    """`python -m module args…` with this interpreter (the venv's, wherever we run from)."""
    return [sys.executable, "-m", module, *args]


def child_env(
    extra: Mapping[str, str] | None = None, python_path: Sequence[Path] = ()
) -> dict[str, str]:
    """This environment without botfleet's own variables, so a child sees only what we set.

    Everything else is inherited (coverage's subprocess hook among it). `python_path` goes
    in front of any PYTHONPATH already set; `extra` is applied last.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BOT_", "BOTFLEET_")) and key != "SERVER_BASE"
    }
    env["PYTHONUNBUFFERED"] = "1"
    if python_path:
        parts = [*map(str, python_path), os.environ.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(part for part in parts if part)
    env.update(extra or {})
    return env


# ---------------------------------------------------------------- one child


@dataclass
class ChildProcess:
    """A process in its own session with its output in a log file; `stop` always ends it."""

    name: str
    args: list[str]
    log_path: Path
    env: dict[str, str]
    cwd: Path | None = None
    die_with_parent: bool = False
    """Ask Linux to SIGTERM the child when this process dies (no effect elsewhere)."""
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            self.popen = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,  # a terminal's Ctrl-C reaches the parent only
                preexec_fn=parent_death_signal() if self.die_with_parent else None,
            )
        return self

    @property
    def process(self) -> subprocess.Popen[bytes]:
        """The running (or ended) process; RuntimeError before `start`."""
        if self.popen is None:
            raise RuntimeError(f"{self.name} was never started")
        return self.popen

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.returncode

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log(self) -> str:
        """The whole log so far ("" before the file exists)."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        except OSError as exc:
            return f"(cannot read {self.log_path}: {exc.strerror})"

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().rstrip().splitlines()[-lines:])

    def signal(self, signum: int) -> None:
        if self.alive():
            self.process.send_signal(signum)

    def wait(self, timeout_s: float | None = DEADLINE_S) -> int:
        """Its exit status; subprocess.TimeoutExpired if it is still running by then."""
        return self.process.wait(timeout_s)

    def kill(self) -> None:
        """SIGKILL to the process alone (a crash, as a test may want one), and reap it."""
        self.signal(signal.SIGKILL)
        self.wait(KILLED_WAIT_S)

    def stop(self, grace_s: float = STOP_GRACE_S) -> int | None:
        """SIGTERM; SIGKILL to its whole session if it lingers past `grace_s` (and to any
        helper it left behind in any case). Its exit status; None if it never started."""
        if self.popen is None:
            return None
        stop_all([self], grace_s)
        return self.popen.returncode

    def kill_session(self) -> None:
        # The child leads its own session (start_new_session), so its group id is its pid:
        # this reaches any helper it forked and nothing else.
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)


def require_alive(process: ChildProcess, error: Callable[[str], Exception] = ChildExited) -> None:
    """Raise `error`, naming the process and quoting the end of its log, if it has exited."""
    if not process.alive():
        raise error(f"{process.name} exited early; its log ends:\n{process.log_tail()}")


# ---------------------------------------------------------------- several children


def stop_all(children: Sequence[ChildProcess], grace_s: float) -> list[ChildProcess]:
    """SIGTERM every child, give them `grace_s` together, then SIGKILL the sessions of
    those still running (and sweep the sessions of the others). Returns the ones killed."""
    for child in children:
        child.signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for child in children:
        if child.popen is not None:
            _wait_quietly(child.popen, max(0.0, deadline - time.monotonic()))
    killed = [child for child in children if child.alive()]
    for child in killed:
        log.warning("%s did not stop within %.0f s of SIGTERM; killing it", child.name, grace_s)
    for child in children:
        child.kill_session()
    for child in children:
        if child.popen is not None:
            child.popen.wait(KILLED_WAIT_S)
    return killed


def kill_all(children: Iterable[ChildProcess]) -> None:
    """The last resort, synchronous (no event loop needed): SIGKILL whatever still runs."""
    for child in children:
        if child.alive():
            child.kill_session()
            child.wait(KILLED_WAIT_S)


def _wait_quietly(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        log.debug("pid %d still running after %.1f s", process.pid, timeout_s)


# ---------------------------------------------------------------- signals


def parent_death_signal() -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGTERM the child when this process dies."""
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return hook


@functools.cache
def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    prctl: Callable[..., int] = ctypes.CDLL(libc_name, use_errno=True).prctl
    return prctl


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt, so `finally` blocks and exit stacks stop children."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
