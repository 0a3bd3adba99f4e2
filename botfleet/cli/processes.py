"""The demo's children: started with their log in `logs_dir/<name>.log`, all stopped at the end.

The mechanics are `botfleet.processes`; this keeps the demo's view of them. Children run
in their own session, so a Ctrl-C in the terminal reaches only the demo, which then stops
them in order (bots first, so they can finish and report, then the coordinator). On Linux
each child also gets SIGTERM from the kernel if the demo itself dies without cleaning up.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from botfleet.processes import ChildProcess, kill_all, stop_all


@dataclass(frozen=True, slots=True)
class Child:
    handle: ChildProcess

    @property
    def name(self) -> str:
        return self.handle.name

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.handle.process

    @property
    def log_path(self) -> Path:
        return self.handle.log_path

    @property
    def alive(self) -> bool:
        return self.handle.alive()

    def log_tail(self, lines: int = 15) -> str:
        return self.handle.log_tail(lines)


class ProcessGroup:
    """Starts children with their output in `logs_dir/<name>.log`; stops them all."""

    def __init__(self, logs_dir: Path) -> None:
        self._logs_dir = logs_dir
        self._children: list[Child] = []

    @property
    def children(self) -> Sequence[Child]:
        return tuple(self._children)

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> Child:
        log_path = self._logs_dir / f"{name}.log"
        handle = ChildProcess(name, list(argv), log_path, dict(env), die_with_parent=True)
        child = Child(handle.start())
        self._children.append(child)
        return child

    async def stop(self, children: Sequence[Child], grace_s: float) -> list[Child]:
        """SIGTERM, wait up to `grace_s`, then SIGKILL; return those that had to be killed."""
        killed = await asyncio.to_thread(stop_all, [child.handle for child in children], grace_s)
        return [child for child in children if any(child.handle is k for k in killed)]

    def kill_all(self) -> None:
        """Last resort, synchronous (no event loop needed): nothing started stays behind."""
        kill_all(child.handle for child in self._children)
