"""What the bot tells about its machine: facts when registering, load in heartbeats."""

from __future__ import annotations

import os
import platform
import resource
import socket
import sys
from dataclasses import dataclass

from botfleet.clock import Clock
from botfleet.protocol import messages as m


@dataclass(frozen=True, slots=True)
class HostFacts:
    hostname: str
    platform: str  # stable across kernel updates: "Linux-x86_64"
    os: str
    cpu_cores: int
    mem_mb: int
    python: str

    @classmethod
    def detect(cls) -> HostFacts:
        return cls(
            hostname=socket.gethostname(),
            platform=f"{platform.system()}-{platform.machine()}",
            os=sys.platform,
            cpu_cores=os.cpu_count() or 1,
            mem_mb=_total_memory_mb(),
            python=platform.python_version(),
        )


def _total_memory_mb() -> int:
    try:
        pages = os.sysconf("SC_PHYS_PAGES")
        page_size = os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0
    return max(0, pages * page_size // (1024 * 1024))


class ProcessLoad:
    """CPU share (0..1 of the machine) since the previous sample, and resident memory peak."""

    def __init__(self, clock: Clock, cpu_cores: int) -> None:
        self._clock = clock
        self._cores = max(1, cpu_cores)
        self._last_wall = clock.monotonic()
        self._last_cpu = self._cpu_seconds()

    @staticmethod
    def _cpu_seconds() -> float:
        times = os.times()
        return times.user + times.system

    def sample(self) -> m.BotMetrics:
        wall, cpu = self._clock.monotonic(), self._cpu_seconds()
        elapsed = wall - self._last_wall
        share = (cpu - self._last_cpu) / (elapsed * self._cores) if elapsed > 0 else 0.0
        self._last_wall, self._last_cpu = wall, cpu
        # ru_maxrss is in KiB on Linux, bytes on macOS.
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        mem_mb = rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024
        return m.BotMetrics(cpu=min(1.0, max(0.0, share)), mem_mb=round(mem_mb, 1))
