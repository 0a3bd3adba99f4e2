"""Each benchmark runs end to end in a tiny configuration and prints its table.

These check that figures come out and that every process the benchmark started is
gone afterwards; they never check how fast anything is.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import psutil  # type: ignore[import-untyped, unused-ignore]
import pytest

from benchmarks.harness import redis_server_path
from tests.support.backends import reachable_pg_dsn

REPO_ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 600
RATE = r"[\d,]+ /s"
DURATION = r"[\d.]+ ms"
RATIO = r"[\d.]+×"
# A tiny run can measure no CPU at all on one side (redis idles); the ratio is then n/a.
CPU_RATIO = r"(?:[\d.]+×|n/a)"
CORE = r"[\d.]+ % of a core"
MIB = r"[\d.]+ MiB"

pytestmark = pytest.mark.e2e


def run_benchmark(module: str, workdir: Path, *args: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", module, "--format", "plain", "--workdir", str(workdir), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert completed.returncode == 0, (
        f"{module} exited {completed.returncode}\n"
        f"stdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
    )
    return completed.stdout


def processes_using(workdir: Path) -> list[str]:
    """Command lines of live processes that mention the work folder (ours, left behind)."""
    leftovers = []
    for process in psutil.process_iter(["cmdline", "environ"]):
        try:
            cmdline = " ".join(process.info["cmdline"] or [])
            environ = process.info["environ"] or {}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if str(workdir) in cmdline or str(workdir) in " ".join(environ.values()):
            leftovers.append(f"{process.pid}: {cmdline}")
    return leftovers


def row(output: str, label: str, *figures: str) -> None:
    """A line of the plain table starting with `label`, then each figure in order."""
    pattern = re.escape(label) + "".join(rf"\s+{figure}" for figure in figures)
    assert re.search(pattern, output), f"no row {label!r} with {figures} in:\n{output}"


def test_vs_celery_prints_both_systems_and_the_ratios(tmp_path: Path) -> None:
    if importlib.util.find_spec("celery") is None or importlib.util.find_spec("redis") is None:
        pytest.skip("the bench extra is not installed (pip install -e '.[bench]')")
    if redis_server_path() is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    output = run_benchmark(
        "benchmarks.vs_celery",
        tmp_path,
        "--jobs", "50", "--latency-jobs", "5", "--warmup-jobs", "1", "--runs", "1",
    )  # fmt: skip
    assert "botfleet vs Celery" in output
    row(output, "processing throughput", RATE, RATE, RATIO, "≥ 10×")
    row(output, "CPU, coordinator / redis", CORE, CORE, CPU_RATIO)
    row(output, "CPU, 2 bots / 2 workers", CORE, CORE, CPU_RATIO)
    row(output, "enqueue throughput", RATE, RATE, RATIO)
    row(output, "submit-to-result p50", DURATION, DURATION, RATIO, "≤ 1×")
    row(output, "submit-to-result p99", DURATION, DURATION, RATIO, "≤ 2×")
    assert re.search(r"run 1 botfleet\s*: process " + RATE, output)
    assert re.search(r"run 1 celery\s*: process " + RATE, output)
    assert re.search(r"run 1 https\s*: process " + RATE, output)
    assert "botfleet over HTTP and over HTTPS" in output
    row(output, "processing throughput", RATE, RATE, r"[-+][0-9.]+ %", "cost < 30 %")
    row(output, "submit-to-result p99", DURATION, DURATION, r"[-+][0-9.]+ %")
    assert "machine: " in output
    assert processes_using(tmp_path) == []


def test_mixed_prints_makespans_bounds_and_buffer_waits_for_both_systems(tmp_path: Path) -> None:
    if importlib.util.find_spec("celery") is None or importlib.util.find_spec("redis") is None:
        pytest.skip("the bench extra is not installed (pip install -e '.[bench]')")
    if redis_server_path() is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    output = run_benchmark(
        "benchmarks.mixed",
        tmp_path,
        "--quick", "--trivial-jobs", "30", "--long-jobs", "2", "--long-seconds", "0.2",
        "--warmup-jobs", "2",
    )  # fmt: skip
    assert "Mixed queue, botfleet vs Celery" in output
    seconds, wait = r"[\d.]+ s", r"[\d,]+ ms"
    for system in ("botfleet", "Celery"):
        row(output, f"{system}, trivial only", seconds, "-", "-", wait, wait, wait)
        for queue in ("long at random", "long first"):
            row(output, f"{system}, {queue}", seconds, seconds, RATIO, wait, wait, wait)
    assert "machine: " in output
    assert processes_using(tmp_path) == []


def test_scale_prints_claims_fleet_and_bot_figures(tmp_path: Path) -> None:
    output = run_benchmark(
        "benchmarks.scale",
        tmp_path,
        "--claim-queues", "200,1000", "--claim-jobs", "50", "--claim-batch", "10",
        "--fleet-bots", "20", "--fleet-warmup", "0.5", "--fleet-seconds", "1",
        "--idle-seconds", "1", "--rss-jobs", "20,50",
    )  # fmt: skip
    assert "botfleet at scale" in output
    row(output, "claim, store API, batch 10, 1,000 queued", RATE)
    row(output, "claim + report, HTTP, 1,000 queued", RATE)
    row(output, "claim, store API, 1,000 ÷ 200 queued", RATIO, r"≥ 0\.80×")
    row(output, "coordinator CPU, 20 idle bots", CORE, "< 25 %")
    row(output, "errors", "0", "0")
    row(output, "bot CPU, idle", CORE, "< 1 %")
    row(output, "bot RSS after 50 jobs", MIB, "< 60 MiB")
    row(output, "bot RSS, 50 ÷ 20 jobs", RATIO)
    assert processes_using(tmp_path) == []


def test_round_trip_prints_the_floor_botfleet_and_the_store(tmp_path: Path) -> None:
    output = run_benchmark("benchmarks.round_trip", tmp_path, "--round-trips", "20")
    assert "One round trip of a default bot" in output
    micros, ceiling = r"[\d,]+ µs", r"[\d,]+ jobs/s"
    for loop in ("asyncio", "uvloop"):
        row(output, "bare aiohttp", loop, micros, micros, micros, ceiling)
        row(output, "botfleet coordinator", loop, micros, micros, micros, ceiling)
    row(output, "store calls alone", "-", micros, "-", micros, ceiling)
    assert processes_using(tmp_path) == []
    bare_servers = [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if "benchmarks.bare_server" in " ".join(p.info["cmdline"] or [])
    ]
    assert bare_servers == []


def test_faults_prints_both_networks_and_the_share(tmp_path: Path) -> None:
    output = run_benchmark("benchmarks.faults", tmp_path, "--jobs", "40", "--cut", "0.5")
    assert "2 bots (MAX_CONCURRENCY 8), 40 sum jobs a run" in output
    row(output, "throughput", RATE, RATE, r"\d+ %", "≥ 50 %")
    row(output, "run", r"[\d.]+ s", r"[\d.]+ s")
    row(output, "longest a bot delivered nothing while jobs waited", r"[\d.]+ s", r"[\d.]+ s")
    assert "machine: " in output


def test_soak_prints_the_curve_and_whether_it_levelled_off(tmp_path: Path) -> None:
    output = run_benchmark(
        "benchmarks.soak", tmp_path, "--jobs", "3000", "--rate", "1500", "--retain", "1s"
    )
    assert "Soak: 3,000 sum jobs" in output
    row(output, "start", "0", r"\d+ s", r"[\d,]+", MIB, MIB, MIB)
    row(output, "50 %", "1,500", r"\d+ s", r"[\d,]+", MIB, MIB, MIB)
    row(output, "drained", "3,000", r"\d+ s", r"[\d,]+", MIB, MIB, MIB)
    for series in ("database", "coordinator RSS", "bot RSS"):
        assert re.search(rf"{series}: (levelled off|still growing) \([+-][\d.]+% ", output)
    assert processes_using(tmp_path) == []


def test_logs_prints_the_cost_per_line_and_the_throughput_with_and_without(
    tmp_path: Path,
) -> None:
    output = run_benchmark(
        "benchmarks.logs", tmp_path, "--lines", "1000", "--jobs", "50", "--rounds", "1"
    )
    assert "botfleet job logs" in output
    for name in ("job.log", "logging", "take + encode"):
        row(output, f"µs per line, {name}", r"[\d.]+")
    row(output, "sum jobs/s, no log lines", RATE)
    row(output, "sum jobs/s, 10 log lines each", RATE)
    row(output, "slower with logs", r"-?[\d.]+ %")
    assert processes_using(tmp_path) == []


def test_controls_prints_every_figure(tmp_path: Path) -> None:
    output = run_benchmark(
        "benchmarks.controls", tmp_path, "--queued", "200", "--rounds", "1",
        "--round-jobs", "20", "--skip-postgres",
    )  # fmt: skip
    assert re.search(r"sqlite .*200 queued.*[\d,]+ claim/s; unconstrained [\d,]+ claim/s", output)
    assert re.search(r"sqlite .*200 queued.*region=eu: [\d,]+ claim/s; ratio to unconst", output)


@pytest.mark.postgres
def test_postgres_prints_every_set_up_against_the_raw_loop(tmp_path: Path) -> None:
    dsn = asyncio.run(reachable_pg_dsn())
    output = run_benchmark(
        "benchmarks.postgres", tmp_path, "--jobs", "300", "--batch", "50", "--pg-dsn", dsn
    )
    row(output, "SQLite, 1 coordinator", RATE, r"\d+%", RATE)
    row(output, "PostgreSQL, 2 coordinators", RATE, r"\d+%", RATE)
    row(output, "raw asyncpg SKIP LOCKED loop", RATE, "100%", "n/a")
    assert processes_using(tmp_path) == []
