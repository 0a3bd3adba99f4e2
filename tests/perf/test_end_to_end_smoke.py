"""benchmarks/end_to_end.py runs in a tiny configuration and prints its figures.

It never checks how fast anything is, only that the figures come out for both settings
and that no process the benchmark started is left behind.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import psutil  # type: ignore[import-untyped, unused-ignore]
import pytest

from benchmarks import end_to_end, vs_celery

REPO_ROOT = Path(__file__).resolve().parents[2]
# Under pytest-timeout's 180 s: a stuck benchmark fails with its own message and logs.
BENCHMARK_TIMEOUT_S = 60
RUN_TIMEOUT_S = 120
RATE = r"[\d,]+ /s"
DURATION = r"[\d.]+ ms"
RATIO = r"[\d.]+×"

pytestmark = pytest.mark.e2e


def leftovers(workdir: Path) -> list[str]:
    """Live processes whose command line or environment mention the work folder."""
    found = []
    for process in psutil.process_iter(["cmdline", "environ"]):
        try:
            cmdline = " ".join(process.info["cmdline"] or [])
            environ = " ".join((process.info["environ"] or {}).values())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if str(workdir) in cmdline or str(workdir) in environ:
            found.append(f"{process.pid}: {cmdline}")
    return found


def run_benchmark(workdir: Path, *args: str) -> tuple[int, str, str]:
    """Run the benchmark; past the deadline, SIGTERM it (it then stops what it started)."""
    command = [sys.executable, "-m", "benchmarks.end_to_end", "--workdir", str(workdir), *args]
    with subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as benchmark:
        try:
            out, err = benchmark.communicate(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            benchmark.terminate()
            out, err = benchmark.communicate(timeout=60)
            err += f"\n(stopped after {RUN_TIMEOUT_S} s)"
        return benchmark.returncode, out, err


def log_tails(workdir: Path, lines: int = 40) -> str:
    return "\n".join(
        f"----- {log} -----\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
        for log in sorted(workdir.rglob("*.log"))
    )


def test_end_to_end_prints_throughput_and_latency_for_both_settings(tmp_path: Path) -> None:
    code, out, err = run_benchmark(
        tmp_path,
        "--jobs", "100", "--latency-jobs", "5", "--warmup-jobs", "1", "--runs", "1",
        "--timeout", str(BENCHMARK_TIMEOUT_S), "--format", "plain",
    )  # fmt: skip
    assert code == 0, f"stdout:\n{out}\nstderr:\n{err}\n{log_tails(tmp_path)}"
    assert "botfleet end to end" in out
    for label, figure in (
        ("throughput, 100 sum jobs", RATE),
        ("submit-to-result p50, idle", DURATION),
        ("submit-to-result p99, idle", DURATION),
    ):
        pattern = re.escape(label) + rf"\s+{figure}\s+{figure}\s+{RATIO}"
        assert re.search(pattern, out), f"no row {label!r} in:\n{out}"
    assert re.search(rf"run 1 seed defaults: {RATE}, p50 {DURATION}, p99 {DURATION}", out)
    assert re.search(rf"run 1 tuned: {RATE}, p50 {DURATION}, p99 {DURATION}", out)
    assert "MAX_CONCURRENCY=2 CLAIM_BATCH_SIZE=5" in out
    assert "machine: " in out
    assert leftovers(tmp_path) == []


def test_end_to_end_compares_report_on_claim_with_reports_alone(tmp_path: Path) -> None:
    code, out, err = run_benchmark(
        tmp_path,
        "--compare", "report-on-claim",
        "--jobs", "100", "--latency-jobs", "5", "--warmup-jobs", "1", "--runs", "1",
        "--timeout", str(BENCHMARK_TIMEOUT_S), "--format", "plain",
    )  # fmt: skip
    assert code == 0, f"stdout:\n{out}\nstderr:\n{err}\n{log_tails(tmp_path)}"
    for label, figure in (
        ("throughput, 100 sum jobs", RATE),
        ("coordinator CPU per job", DURATION),
        ("bots' CPU per job", DURATION),
    ):
        pattern = re.escape(label) + rf"\s+{figure}\s+{figure}\s+({RATIO}|n/a)"
        assert re.search(pattern, out), f"no row {label!r} in:\n{out}"
    assert re.search(rf"run 1 reports alone: {RATE}, p50 {DURATION}, p99 {DURATION}", out)
    assert re.search(rf"run 1 report_on_claim: {RATE}, p50 {DURATION}, p99 {DURATION}", out)
    assert "--features long_poll,batch_report,progress,deregister" in out
    assert leftovers(tmp_path) == []


def test_the_alternative_may_raise_the_coordinators_claim_batch() -> None:
    """What the free-slots rule costs: with a large MAX_CONCURRENCY the coordinator's
    claim_batch_size (5) still caps each claim, unless the alternative raises it."""
    options = end_to_end.parse_args(
        ["--tuned-env", "MAX_CONCURRENCY=64", "--tuned-claim-batch", "64"]
    )
    assert options.tuned.bot_env == {"MAX_CONCURRENCY": "64"}
    assert options.tuned.server_args == ("--claim-batch-size", "64")
    assert "coordinator --claim-batch-size 64" in options.tuned.describe()
    assert end_to_end.parse_args([]).tuned.server_args == ()
    with pytest.raises(SystemExit):
        end_to_end.parse_args(["--tuned-claim-batch", "0"])


def test_vs_celery_may_raise_the_coordinators_claim_batch() -> None:
    options = vs_celery.parse_args(["--bot-env", "MAX_CONCURRENCY=64", "--claim-batch", "64"])
    assert (options.bot_env, options.claim_batch) == ({"MAX_CONCURRENCY": "64"}, 64)
    assert vs_celery.parse_args([]).claim_batch is None
    with pytest.raises(SystemExit):
        vs_celery.parse_args(["--claim-batch", "0"])
