"""The figures of `benchmarks.vs_celery` and its tables: botfleet against Celery, and
what TLS costs botfleet (the same runs over HTTP and over HTTPS)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.harness import (
    Printable,
    Table,
    code_line,
    fmt_core,
    fmt_ms,
    fmt_rate,
    fmt_ratio,
    machine_line,
    medians,
    ratio,
)

ENQUEUE = "enqueue_per_s"
PROCESS = "process_per_s"
STARTUP = "startup_s"
SERVER_CORES = "server_cores"
WORKER_CORES = "worker_cores"
STEADY = "steady_per_s"
P50 = "latency_p50_s"
P99 = "latency_p99_s"
CLIENT_ENQUEUE = "client_enqueue_per_s"  # botfleet.client submit_many
GROUP_ENQUEUE = "group_enqueue_per_s"  # Celery group(...).apply_async()


@dataclass(frozen=True, slots=True)
class Options:
    jobs: int
    latency_jobs: int
    warmup_jobs: int
    runs: int
    timeout_s: float
    fmt: str
    workdir: Path | None
    bot_env: dict[str, str]
    claim_batch: int | None = None  # what-if: the coordinator's claim_batch_size


def comparison_table(
    botfleet: dict[str, float], celery: dict[str, float], options: Options
) -> Table:
    table = Table(
        f"botfleet vs Celery: medians of {options.runs} run(s), {options.jobs:,} jobs, "
        f"latency over {options.latency_jobs} jobs",
        ["measure", "botfleet", "Celery", "botfleet ÷ Celery", "target"],
    )
    rows = (
        ("processing throughput", PROCESS, PROCESS, fmt_rate, "≥ 10×"),
        ("  after the first result", STEADY, STEADY, fmt_rate, "(info)"),
        ("  start to first result", STARTUP, STARTUP, fmt_ms, "(info)"),
        ("  CPU, coordinator / redis", SERVER_CORES, SERVER_CORES, fmt_core, "(info)"),
        ("  CPU, 2 bots / 2 workers", WORKER_CORES, WORKER_CORES, fmt_core, "(info)"),
        ("enqueue throughput", ENQUEUE, ENQUEUE, fmt_rate, "-"),
        ("  client submit_many / apply_async loop", CLIENT_ENQUEUE, ENQUEUE, fmt_rate, "(info)"),
        ("  client submit_many / group", CLIENT_ENQUEUE, GROUP_ENQUEUE, fmt_rate, "(info)"),
        ("submit-to-result p50", P50, P50, fmt_ms, "≤ 1×"),
        ("submit-to-result p99", P99, P99, fmt_ms, "≤ 2×"),
    )
    for label, our_key, their_key, fmt, target in rows:
        ours, theirs = botfleet.get(our_key, math.nan), celery.get(their_key, math.nan)
        table.add_row(label, fmt(ours), fmt(theirs), fmt_ratio(ratio(ours, theirs)), target)
    table.notes.append(f"machine: {machine_line()}")
    table.notes.append(code_line())
    changed = [f"{k}={v}" for k, v in options.bot_env.items()]
    if options.claim_batch is not None:
        changed.append(f"coordinator --claim-batch-size {options.claim_batch}")
    settings = " ".join(changed) or "default settings"
    table.notes.append(
        f"botfleet: SQLite coordinator + 2 bots, {settings}; Celery: Redis broker and "
        "result backend, 2 workers --pool solo (no gossip/mingle/heartbeat)"
    )
    table.notes.append(
        f"enqueue: botfleet's bulk requests in a row, and botfleet.client submit_many; "
        f"Celery's apply_async loop, and one group of {options.jobs:,}"
    )
    return table


def run_line(run: int, system: str, figures: dict[str, float]) -> str:
    return (
        f"run {run + 1} {system:8}: process {fmt_rate(figures[PROCESS])}, "
        f"enqueue {fmt_rate(figures[ENQUEUE])}, "
        f"p50 {fmt_ms(figures[P50])}, p99 {fmt_ms(figures[P99])}"
    )


@dataclass
class Tables:
    """Several tables printed one after the other."""

    tables: list[Printable] = field(default_factory=list)

    def print(self, fmt: str) -> None:
        for table in self.tables:
            table.print(fmt)
            print(flush=True)


# CPU seconds per job processed: less moved by other work on the machine than the rates.
SERVER_CPU_PER_JOB = "server_cpu_s_per_job"
WORKER_CPU_PER_JOB = "worker_cpu_s_per_job"

# (label, key, throughput: a drop is the cost; else time or CPU: a rise is), target
_TLS_ROWS = (
    ("processing throughput", PROCESS, True, "cost < 30 %"),
    ("  after the first result", STEADY, True, "(info)"),
    ("  CPU, coordinator", SERVER_CORES, False, "(info)"),
    ("  CPU, 2 bots", WORKER_CORES, False, "(info)"),
    ("  CPU per job, coordinator", SERVER_CPU_PER_JOB, False, "(info)"),
    ("  CPU per job, 2 bots", WORKER_CPU_PER_JOB, False, "(info)"),
    ("enqueue throughput", ENQUEUE, True, "(info)"),
    ("  client submit_many", CLIENT_ENQUEUE, True, "(info)"),
    ("submit-to-result p50", P50, False, "(info)"),
    ("submit-to-result p99", P99, False, "(info)"),
)


def tls_cost(plain: float, https: float, throughput: bool) -> float:
    """The share TLS takes: the throughput lost, or the time (or CPU) added."""
    share = ratio(https, plain)
    return 1 - share if throughput else share - 1


def cpu_per_job(figures: dict[str, float]) -> dict[str, float]:
    rate = figures[PROCESS]
    return {
        SERVER_CPU_PER_JOB: figures[SERVER_CORES] / rate,
        WORKER_CPU_PER_JOB: figures[WORKER_CORES] / rate,
    }


def fmt_us(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1e6:,.0f} µs"


def fmt_cost(share: float) -> str:
    return "n/a" if math.isnan(share) else f"{share * 100:+.1f} %".replace("+-", "-")


def tls_cost_table(
    plain: dict[str, float],
    https: dict[str, float],
    per_run: Sequence[tuple[dict[str, float], dict[str, float]]],
    options: Options,
) -> Table:
    table = Table(
        f"botfleet over HTTP and over HTTPS: medians of {options.runs} run(s), "
        f"{options.jobs:,} jobs, latency over {options.latency_jobs} jobs",
        ["measure", "HTTP", "HTTPS", "TLS cost", "target"],
    )
    plain = plain | medians([cpu_per_job(run) for run, _ in per_run])
    https = https | medians([cpu_per_job(run) for _, run in per_run])
    for label, key, throughput, target in _TLS_ROWS:
        ours, theirs = plain.get(key, math.nan), https.get(key, math.nan)
        fmt = (
            fmt_rate if throughput
            else fmt_core if "cores" in key
            else fmt_us if "per_job" in key
            else fmt_ms
        )  # fmt: skip
        cost = fmt_cost(tls_cost(ours, theirs, throughput))
        table.add_row(label, fmt(ours), fmt(theirs), cost, target)
    costs = [fmt_cost(tls_cost(a[PROCESS], b[PROCESS], True)) for a, b in per_run]
    table.notes.append(f"processing throughput cost per run: {' / '.join(costs)}")
    table.notes.append(
        "HTTPS: the same coordinator and bots with default settings, a certificate for "
        "127.0.0.1 from a CA made at run time (trustme, ECDSA P-256), TLS 1.3; the bots "
        "and the clients trust it through BOT_CA_FILE / ca_file"
    )
    return table
