"""botfleet at scale: claims on a large queue, a large idle fleet, one bot's cost.

Three sections, each selectable with `--only`:

- claims: claim throughput with each of `--claim-queues` jobs queued (store API and
  HTTP; see benchmarks/scale_claims.py for exactly what is timed);
- fleet: the coordinator's CPU while `--fleet-bots` simulated bots heartbeat and
  long-poll (benchmarks/loadgen.py);
- bot: one real bot's CPU and RSS while idle, and its RSS after each of `--rss-jobs`
  jobs (benchmarks/scale_bot.py).

Prints figures beside botfleet's targets (docs/performance.md); never asserts them.
Run from the repository root: `python -m benchmarks.scale`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.fleet import start_coordinator
from benchmarks.harness import (
    Table,
    add_output_arguments,
    code_line,
    fmt_core,
    fmt_mib,
    fmt_ms,
    fmt_rate,
    fmt_ratio,
    load_line,
    machine_line,
    ratio,
    run_benchmark,
)
from benchmarks.loadgen import FleetFigures, simulate_fleet
from benchmarks.scale_bot import BotFigures, bot_figures
from benchmarks.scale_claims import ClaimFigures, claim_figures

SECTIONS = ("claims", "fleet", "bot")


@dataclass(frozen=True, slots=True)
class Options:
    sections: tuple[str, ...]
    claim_queues: list[int]
    claim_jobs: int
    claim_batch: int
    claim_rounds: int
    fleet_bots: int
    fleet_warmup_s: float
    fleet_seconds: float
    idle_seconds: float
    rss_jobs: list[int]
    bot_env: dict[str, str]
    timeout_s: float
    fmt: str
    workdir: Path | None


# ---------------------------------------------------------------- sections


def claims_rows(table: Table, figures: list[ClaimFigures], batch: int) -> None:
    for fig in figures:
        size = f"{fig.queued:,} queued"
        table.add_row(
            f"claim, store API, batch {batch}, {size}", fmt_rate(fig.store_claim_per_s), ""
        )
        table.add_row(f"claim + report, store API, {size}", fmt_rate(fig.store_cycle_per_s), "")
        table.add_row(f"claim + report, HTTP, {size}", fmt_rate(fig.http_cycle_per_s), "")
        table.add_row(
            f"  coordinator CPU during HTTP, {size}", fmt_core(fig.http_coordinator_cores), ""
        )
        table.add_row(f"  fill (store bulk insert), {size}", fmt_rate(fig.fill_per_s), "")
    if len(figures) >= 2:
        small, large = figures[0], figures[-1]
        label = f"{large.queued:,} ÷ {small.queued:,} queued"
        table.add_row(
            f"claim, store API, {label}",
            fmt_ratio(ratio(large.store_claim_per_s, small.store_claim_per_s)),
            "≥ 0.80×",
        )
        table.add_row(
            f"claim + report, HTTP, {label}",
            fmt_ratio(ratio(large.http_cycle_per_s, small.http_cycle_per_s)),
            "≥ 0.80×",
        )


def fleet_rows(table: Table, fig: FleetFigures) -> None:
    table.add_row(
        f"coordinator CPU, {fig.bots:,} idle bots", fmt_core(fig.usage.core_fraction), "< 25 %"
    )
    table.add_row("  heartbeats answered", fmt_rate(fig.heartbeats_per_s), "")
    table.add_row("  long-polls answered (empty)", fmt_rate(fig.claims_per_s), "")
    table.add_row(
        "  heartbeat round trip p50 / p99",
        f"{fmt_ms(fig.heartbeat_p50_s)} / {fmt_ms(fig.heartbeat_p99_s)}",
        "",
    )
    table.add_row("  errors", str(fig.errors), "0")
    if fig.first_error:
        table.notes.append(f"first fleet error: {fig.first_error}")


def bot_rows(table: Table, fig: BotFigures) -> None:
    table.add_row("bot CPU, idle", fmt_core(fig.idle.core_fraction), "< 1 %")
    table.add_row("bot RSS, idle", fmt_mib(fig.idle_rss), "< 60 MiB")
    for jobs, rss in sorted(fig.rss_after.items()):
        table.add_row(f"bot RSS after {jobs:,} jobs", fmt_mib(rss), "< 60 MiB")
    if len(fig.rss_after) >= 2:
        (first_jobs, first), *_, (last_jobs, last) = sorted(fig.rss_after.items())
        table.add_row(
            f"bot RSS, {last_jobs:,} ÷ {first_jobs:,} jobs",
            fmt_ratio(ratio(last, first)),
            "0.90–1.10×",
        )
    table.add_row("  bot peak RSS while working", fmt_mib(fig.peak_rss), "")
    table.add_row("  one bot's throughput (info)", fmt_rate(fig.jobs_per_s), "")
    table.add_row("  bot CPU while working", fmt_core(fig.busy_cores), "")


async def fleet_section(base: Path, options: Options) -> FleetFigures:
    with contextlib.ExitStack() as stack:
        coordinator = start_coordinator(stack, base, name="coordinator-fleet")
        return await simulate_fleet(
            coordinator.api,
            coordinator.enroll_token,
            coordinator.process.pid,
            options.fleet_bots,
            options.fleet_warmup_s,
            options.fleet_seconds,
        )


def benchmark(base: Path, options: Options) -> Table:
    table = Table("botfleet at scale", ["measure", "figure", "target"])
    load_before = load_line()
    if "claims" in options.sections:
        claims_dir = base / "claims"
        claims_dir.mkdir()
        figures = asyncio.run(
            claim_figures(
                claims_dir,
                options.claim_queues,
                options.claim_jobs,
                options.claim_batch,
                options.claim_rounds,
            )
        )
        for fig in figures:
            print(f"claims with {fig.queued:,} queued: {fig}", flush=True)
        claims_rows(table, figures, options.claim_batch)
    if "fleet" in options.sections:
        fleet = asyncio.run(fleet_section(base, options))
        print(f"fleet: {fleet}", flush=True)
        fleet_rows(table, fleet)
    if "bot" in options.sections:
        bot = asyncio.run(
            bot_figures(
                base, options.idle_seconds, options.rss_jobs, options.bot_env, options.timeout_s
            )
        )
        settings = " ".join(f"{k}={v}" for k, v in options.bot_env.items()) or "defaults"
        table.notes.append(f"measured bot: {settings}")
        print(f"bot: {bot}", flush=True)
        bot_rows(table, bot)
    table.notes.append(f"machine: {machine_line()}")
    table.notes.append(code_line())
    table.notes.append(f"before: {load_before}; after: {load_line()}")
    return table


# ---------------------------------------------------------------- command line


def raise_open_files_limit(wanted: int) -> None:
    """A fleet of N bots holds about 2N sockets in us and in the coordinator (inherited)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


def int_list(text: str) -> list[int]:
    values = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    if not values or any(value < 1 for value in values):
        raise argparse.ArgumentTypeError(f"want positive whole numbers, got {text!r}")
    return values


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--only", default=",".join(SECTIONS), help="claims,fleet,bot")
    parser.add_argument("--claim-queues", type=int_list, default=[10_000, 1_000_000])
    parser.add_argument("--claim-jobs", type=int, default=20_000, help="claimed per queue size")
    parser.add_argument("--claim-batch", type=int, default=100, help="jobs per claim (≤ 100)")
    parser.add_argument("--claim-rounds", type=int, default=10, help="alternating rounds")
    parser.add_argument("--fleet-bots", type=int, default=1_000)
    parser.add_argument("--fleet-warmup", type=float, default=10.0, help="seconds")
    parser.add_argument("--fleet-seconds", type=float, default=60.0, help="measured window")
    parser.add_argument("--idle-seconds", type=float, default=30.0, help="bot idle window")
    parser.add_argument("--rss-jobs", type=int_list, default=[10_000, 100_000])
    parser.add_argument(
        "--bot-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment of the measured bot, e.g. MAX_CONCURRENCY=32 (default: none)",
    )
    parser.add_argument("--timeout", type=float, default=900, help="per wait, seconds")
    add_output_arguments(parser, "keep logs and databases here")
    args = parser.parse_args(argv)
    sections = tuple(part.strip() for part in args.only.split(",") if part.strip())
    unknown = set(sections) - set(SECTIONS)
    if unknown or not sections:
        parser.error(f"--only takes some of {','.join(SECTIONS)}")
    bot_env = dict(item.split("=", 1) for item in args.bot_env if "=" in item)
    if len(bot_env) != len(args.bot_env):
        parser.error("--bot-env takes NAME=VALUE")
    if not 1 <= args.claim_batch <= 100:
        parser.error("--claim-batch must be 1..100 (the claim call's limit)")
    if min(args.claim_jobs, args.fleet_bots) < 1 or min(args.fleet_seconds, args.idle_seconds) <= 0:
        parser.error("counts and windows must be positive")
    return Options(
        sections,
        sorted(args.claim_queues),
        args.claim_jobs,
        args.claim_batch,
        max(args.claim_rounds, 1),
        args.fleet_bots,
        max(args.fleet_warmup, 0.0),
        args.fleet_seconds,
        args.idle_seconds,
        args.rss_jobs,
        bot_env,
        args.timeout,
        args.format,
        args.workdir,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    raise_open_files_limit(options.fleet_bots * 3 + 256)
    return run_benchmark(options, benchmark, prefix="bf-scale-")


if __name__ == "__main__":
    sys.exit(main())
