"""Shared helpers for the benchmarks: child processes, a private Redis, figures, tables.

Everything a benchmark starts is registered on a `contextlib.ExitStack` and stopped when
the stack closes, also on Ctrl-C and on SIGTERM (`sigterm_as_interrupt`). Every wait is
bounded in time. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

import psutil  # type: ignore[import-untyped, unused-ignore]

# The child-process mechanics; the `as` names are re-exported for the benchmarks.
from botfleet import processes
from botfleet.processes import LOCALHOST as LOCALHOST
from botfleet.processes import ChildProcess as ChildProcess
from botfleet.processes import free_port as free_port
from botfleet.processes import port_open as port_open
from botfleet.processes import python_module as python_module
from botfleet.processes import sigterm_as_interrupt as sigterm_as_interrupt

REPO_ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


class BenchmarkError(Exception):
    """A benchmark could not run (a process did not start, a deadline passed)."""


# ---------------------------------------------------------------- waiting and ports
# free_port, port_open and the child-process mechanics are botfleet.processes'; these
# adapters make its failures BenchmarkErrors, which `run_benchmark` reports cleanly.


def wait_until(
    condition: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.01
) -> None:
    processes.wait_until(condition, timeout_s, what, interval_s, error=BenchmarkError)


def watch_count(
    count: Callable[[], int], total: int, timeout_s: float, what: str, interval_s: float = 0.01
) -> float:
    """Poll `count()` until it reaches `total`; return when (perf_counter) it first moved."""
    deadline = time.monotonic() + timeout_s
    first_seen = math.nan
    while True:
        done = count()
        if done > 0 and math.isnan(first_seen):
            first_seen = time.perf_counter()
        if done >= total:
            return first_seen
        if time.monotonic() > deadline:
            raise BenchmarkError(f"timed out after {timeout_s:.0f} s waiting for {what}: {done}")
        time.sleep(interval_s)


# ---------------------------------------------------------------- child processes


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without botfleet's own variables, the repository importable."""
    return processes.child_env(extra, python_path=[REPO_ROOT])


def start_process(
    stack: contextlib.ExitStack,
    name: str,
    args: Sequence[str],
    workdir: Path,
    env: Mapping[str, str] | None = None,
) -> ChildProcess:
    """Start a child whose stop is registered on `stack` before anything else can fail."""
    log_path = workdir / f"{name}.log"
    process = ChildProcess(name, list(args), log_path, child_env(env), cwd=REPO_ROOT)
    stack.callback(process.stop)
    return process.start()


def require_alive(process: ChildProcess) -> None:
    processes.require_alive(process, BenchmarkError)


# ---------------------------------------------------------------- a private Redis


@dataclass(frozen=True, slots=True)
class RedisServer:
    port: int
    pid: int

    def url(self, db: int = 0) -> str:
        return f"redis://{LOCALHOST}:{self.port}/{db}"


def redis_server_path() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )


def start_redis(stack: contextlib.ExitStack, workdir: Path) -> RedisServer:
    """redis-server on a free loopback port, no persistence; stopped when `stack` closes."""
    binary = redis_server_path()
    if binary is None:
        raise BenchmarkError("redis-server not found (Debian: apt-get install redis-server)")
    port = free_port()
    args = [
        binary,
        "--port", str(port),
        "--bind", LOCALHOST,
        "--protected-mode", "yes",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(workdir),
        "--daemonize", "no",
    ]  # fmt: skip
    process = start_process(stack, "redis", args, workdir)
    wait_until(lambda: port_open(port) or not process.alive(), 30, "redis-server listening")
    require_alive(process)
    return RedisServer(port, process.pid)


# ---------------------------------------------------------------- the machine


def cpu_model() -> str:
    """The CPU model from /proc/cpuinfo, or the platform's word for it elsewhere."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def machine_line() -> str:
    memory = psutil.virtual_memory().total / (1024 * MIB)
    return (
        f"{os.cpu_count()} cores ({cpu_model()}), {memory:.0f} GiB RAM, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def code_line() -> str:
    """Which code was measured: the commit, and whether tracked files had changed."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"code: unknown ({exc})"
    return f"code: {commit}" + (" with uncommitted changes" if changed else "")


def load_line() -> str:
    """The load average: figures from a shared or busy machine are noisier."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


# ---------------------------------------------------------------- figures


def percentile(values: Sequence[float], pct: float) -> float:
    """The pct-th percentile, interpolating linearly between ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def medians(runs: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Per key, the median over the runs that measured it."""
    keys = {key for run in runs for key in run}
    return {key: median([run[key] for run in runs if key in run]) for key in sorted(keys)}


# ---------------------------------------------------------------- CPU and memory


def cpu_seconds(pids: Sequence[int]) -> float:
    """User plus system CPU time the processes have used so far."""
    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def rss_bytes(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


@dataclass(frozen=True, slots=True)
class Usage:
    cpu_s: float
    wall_s: float

    @property
    def core_fraction(self) -> float:
        """Share of one core used over the interval (1.0 = one core busy)."""
        return self.cpu_s / self.wall_s if self.wall_s > 0 else math.nan


class CpuMeter:
    """CPU time used by some processes between `__init__` and `finish()`."""

    def __init__(self, pids: Sequence[int]) -> None:
        self._pids = list(pids)
        self._cpu_start = cpu_seconds(self._pids)
        self._wall_start = time.monotonic()

    def finish(self) -> Usage:
        return Usage(cpu_seconds(self._pids) - self._cpu_start, time.monotonic() - self._wall_start)


@dataclass
class PeakRss:
    """Samples the RSS of some processes on a thread; `peak` per pid once stopped."""

    pids: Sequence[int]
    interval_s: float = 0.1
    peak: dict[int, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> PeakRss:
        self._thread = threading.Thread(target=self._run, name="peak-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self.pids:
                try:
                    self.peak[pid] = max(self.peak.get(pid, 0), rss_bytes(pid))
                except psutil.NoSuchProcess:
                    continue  # it exited; its last sample stands
            self._stop.wait(self.interval_s)


# ---------------------------------------------------------------- formatting


def fmt_rate(per_s: float) -> str:
    return "n/a" if math.isnan(per_s) else f"{per_s:,.0f} /s"


def fmt_ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.2f} ms"


def fmt_ratio(value: float) -> str:
    return "n/a" if math.isnan(value) or math.isinf(value) else f"{value:.2f}×"


def fmt_mib(nbytes: float) -> str:
    return "n/a" if math.isnan(nbytes) else f"{nbytes / MIB:.1f} MiB"


def fmt_core(fraction: float) -> str:
    if math.isnan(fraction):
        return "n/a"
    digits = 2 if fraction < 0.01 else 1  # an idle process: show how far below 1 %
    return f"{fraction * 100:.{digits}f} % of a core"


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


TABLE_FORMATS = ("rich", "markdown", "plain")
PIPED_WIDTH = 130


def markdown_cell(cell: str) -> str:
    text = cell.replace("|", "\\|")
    stripped = text.lstrip(" ")
    return f"↳ {stripped}" if stripped != text else text


@dataclass
class Table:
    """A titled table printed with rich, as Markdown (for docs) or as plain text."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add_row(self, *cells: str) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"row has {len(cells)} cells, table has {len(self.columns)}")
        self.rows.append(list(cells))

    def markdown(self) -> str:
        lines = [f"**{self.title}**", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("| " + " | ".join("---" for _ in self.columns) + " |")
        # Markdown collapses the leading spaces that mark a sub-row; an arrow survives.
        lines += [
            "| " + " | ".join(markdown_cell(cell) for cell in row) + " |" for row in self.rows
        ]
        return "\n".join([*lines, "", *self.notes])

    def plain(self) -> str:
        widths = [
            max(len(cell) for cell in column)
            for column in zip(self.columns, *self.rows, strict=True)
        ]

        def line(cells: Sequence[str]) -> str:
            return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

        body = [line(self.columns), line(["-" * width for width in widths])]
        body += [line(row) for row in self.rows]
        return "\n".join([self.title, "", *body, "", *self.notes])

    def print(self, fmt: str = "rich") -> None:
        if fmt == "markdown":
            print(self.markdown(), flush=True)
        elif fmt == "plain":
            print(self.plain(), flush=True)
        else:
            self._print_rich()

    def _print_rich(self) -> None:
        from rich.console import Console
        from rich.table import Table as RichTable

        table = RichTable(title=self.title)
        for index, column in enumerate(self.columns):
            table.add_column(column, justify="left" if index == 0 else "right")
        for row in self.rows:
            table.add_row(*row)
        # Piped to a file or a test, rich would wrap at 80 columns; give the rows room.
        console = Console() if sys.stdout.isatty() else Console(width=PIPED_WIDTH)
        console.print(table)
        for note in self.notes:
            console.print(note, highlight=False)


class Printable(Protocol):
    def print(self, fmt: str) -> None: ...


class HasWorkdir(Protocol):
    @property
    def workdir(self) -> Path | None: ...

    @property
    def fmt(self) -> str: ...


OptionsT = TypeVar("OptionsT", bound=HasWorkdir)


def run_benchmark(
    options: OptionsT, benchmark: Callable[[Path, OptionsT], Printable], prefix: str
) -> int:
    """The shared `main` of every benchmark: a work folder (a temporary one unless
    `--workdir` names one), Ctrl-C and SIGTERM stopping everything, the table printed.
    Exit status 0, 1 when the benchmark failed, 130 when interrupted."""
    try:
        with sigterm_as_interrupt(), contextlib.ExitStack() as stack:
            if options.workdir is None:
                base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))
            else:
                base = options.workdir
                base.mkdir(parents=True, exist_ok=True)
            table = benchmark(base, options)
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; every process started was stopped", file=sys.stderr)
        return 130
    table.print(options.fmt)
    return 0


def add_output_arguments(parser: argparse.ArgumentParser, workdir_help: str) -> None:
    """`--format` and `--workdir`, the same in every benchmark."""
    parser.add_argument("--format", choices=TABLE_FORMATS, default="rich")
    parser.add_argument("--workdir", type=Path, help=workdir_help)


def add_fleet_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The latency and repetition flags of the benchmarks that run a whole fleet."""
    parser.add_argument("--latency-jobs", type=int, default=200, help="default 200")
    parser.add_argument("--warmup-jobs", type=int, default=10, help="uncounted, default 10")
    parser.add_argument("--runs", type=int, default=3, help="medians over runs (default 3)")
    parser.add_argument("--timeout", type=float, default=600, help="per phase, seconds")
    add_output_arguments(parser, "keep logs and databases here")
