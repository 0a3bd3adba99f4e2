"""Child processes the demo starts, and stopping every one of them whatever happens.

Children run in their own session, so a Ctrl-C in the terminal reaches only the
demo, which then stops them in order (bots first, so they can finish and report,
then the coordinator). On Linux each child also gets SIGTERM from the kernel if
the demo itself dies without cleaning up (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return f"(cannot read {self.log_path}: {exc.strerror})"
        return "\n".join(text.rstrip().splitlines()[-lines:])


class ProcessGroup:
    """Starts children with their output in `logs_dir/<name>.log`; stops them all."""

    def __init__(self, logs_dir: Path) -> None:
        self._logs_dir = logs_dir
        self._children: list[Child] = []
        self._die_with_parent = _parent_death_signal()

    @property
    def children(self) -> Sequence[Child]:
        return tuple(self._children)

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> Child:
        self._logs_dir.mkdir(parents=True, exist_ok=True)
        log_path = self._logs_dir / f"{name}.log"
        with log_path.open("ab") as log_file:
            process = subprocess.Popen(
                list(argv),
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=self._die_with_parent,
            )
        child = Child(name=name, process=process, log_path=log_path)
        self._children.append(child)
        return child

    async def stop(self, children: Sequence[Child], grace_s: float) -> list[Child]:
        """SIGTERM, wait up to `grace_s`, then SIGKILL; return those that had to be killed."""
        for child in children:
            if child.alive:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for child in children:
            remaining = max(0.0, deadline - time.monotonic())
            await asyncio.to_thread(_wait_quietly, child.process, remaining)
        killed = [child for child in children if child.alive]
        for child in killed:
            log.warning("%s did not stop within %.0f s; killing it", child.name, grace_s)
            child.process.kill()
        for child in children:
            child.process.wait()
        return killed

    def kill_all(self) -> None:
        """Last resort, synchronous (no event loop needed): nothing started stays behind."""
        for child in self._children:
            if child.alive:
                child.process.kill()
            child.process.wait()


def _wait_quietly(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        log.debug("pid %d still running after %.1f s", process.pid, timeout_s)


def _parent_death_signal() -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGTERM the child when the demo dies."""
    if not sys.platform.startswith("linux"):
        return None
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    prctl = ctypes.CDLL(libc_name, use_errno=True).prctl
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return hook
