"""Claim throughput with limits in play, with and without labels, against the
unconstrained figure in the same run.

Store level (as benchmarks/scale_claims.py): the queue is filled straight through the
store, and one bot claims `--batch` jobs per `claim_jobs` call and completes them in one
`report`. Three queues of `--queued` jobs side by side on one database per backend,
each of its own operation (a claim asks for one operation, and every index the claim
reads starts with it):

- unconstrained (`free`): every job plain;
- constrained (`held`): 90 % of the jobs name the limit `full`, whose one place is
  held by a job another bot runs for the whole benchmark; the other 10 % are plain.
  Every claim then takes the stepwise path (a limit is in play for the operation), and
  must not visit the 9,000 held jobs;
- constrained with labels (`labelled`): as constrained, but half of the jobs (held or
  not) require `region=eu`, and the claiming bot has the labels `region=eu,arch=x86`:
  claims check labels and limits at once.

Rounds take turns between the three queues (so a machine busy with other work slows
each alike), and each figure is the median over its rounds; after each round, off the
clock, the jobs it took are queued again, so every round runs at the size it is named
for. "claim/s" counts jobs per second of time spent in `claim_jobs`. Prints the
figures; never asserts them.
Run from the repository root: `python -m benchmarks.controls`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.harness import BenchmarkError, add_output_arguments, median
from benchmarks.postgres import DEFAULT_PG_DSN, fresh_database
from botfleet.clock import SystemClock
from coordinator.retry import exponential_backoff
from coordinator.store import Store, open_store
from coordinator.store.base import ClaimInput, NewJob, Registration, ReportInput
from coordinator.store.limits import LimitSpec

FILL_CHUNK = 5_000
LEASE_TTL_S = 3600.0
FULL = "full"
QUEUES = ("free", "held", "labelled")  # the operation of each queue
EU = {"region": ["eu"]}  # what the labelled jobs require
BOT_LABELS = {"region": "eu", "arch": "x86"}


@dataclass(frozen=True, slots=True)
class Figures:
    backend: str
    unconstrained_per_s: float
    constrained_per_s: float
    labelled_per_s: float  # constrained, with labels required and checked

    @property
    def ratio(self) -> float:
        return self.constrained_per_s / self.unconstrained_per_s

    @property
    def labelled_ratio(self) -> float:
        return self.labelled_per_s / self.unconstrained_per_s


def jobs(op: str, count: int, limits: tuple[str, ...] = (), labelled: bool = False) -> list[NewJob]:
    """`count` jobs of `op`; `labelled`: every other one requires region=eu."""
    now = datetime.now(UTC)
    return [
        NewJob(
            op=op,
            payload={"a": i, "b": 1},
            run_at=now,
            limits=limits,
            requires=EU if labelled and i % 2 else None,
        )
        for i in range(count)
    ]


async def fill(
    store: Store, op: str, count: int, limits: tuple[str, ...] = (), labelled: bool = False
) -> None:
    for offset in range(0, count, FILL_CHUNK):
        await store.submit_jobs(jobs(op, min(FILL_CHUNK, count - offset), limits, labelled))


def registration(key: str, capacity: int, labels: dict[str, str] | None = None) -> Registration:
    now = datetime.now(UTC)
    return Registration(
        bot_key=key,
        instance_id=key + "-1",
        name=key,
        version="1.0.0",
        capabilities=(*QUEUES, "hold"),
        resources={},
        constraints={"max_concurrency": capacity},
        meta={},
        token_hash=hashlib.sha256(key.encode()).hexdigest(),
        token_expires_at=now + timedelta(days=1),
        lease_until=now + timedelta(days=1),
        default_max_concurrency=capacity,
        labels=labels or {},
    )


async def claim_round(store: Store, bot_id: str, op: str, count: int, batch: int) -> float:
    """Claim and complete `count` jobs of `op`; the seconds spent in claim_jobs."""
    done, claim_s = 0, 0.0
    while done < count:
        before = time.perf_counter()
        claimed = await store.claim_jobs(
            ClaimInput(bot_id, [op], min(batch, count - done), LEASE_TTL_S)
        )
        claim_s += time.perf_counter() - before
        if not claimed:
            raise BenchmarkError(f"claim_jobs returned nothing after {done} jobs of {op}")
        if any(FULL in job.limits for job in claimed):
            raise BenchmarkError("a claim started a job past its full limit")
        await store.report(
            bot_id, [ReportInput(job.id, "complete", job.attempt, {}) for job in claimed]
        )
        done += len(claimed)
    return claim_s


async def measure(
    store: Store, queued: int, rounds: int, round_jobs: int, batch: int
) -> tuple[float, float, float]:
    bots = {
        "free": (await store.register_bot(registration("plain", batch))).bot.id,
        "held": (await store.register_bot(registration("limited", batch))).bot.id,
        "labelled": (await store.register_bot(registration("labelled", batch, BOT_LABELS))).bot.id,
    }
    holder = (await store.register_bot(registration("holder", 1))).bot.id
    await store.put_limit(LimitSpec(FULL, max_running=1))
    await store.submit_jobs(
        [NewJob(op="hold", payload={}, run_at=datetime.now(UTC), limits=(FULL,))]
    )
    held = await store.claim_jobs(ClaimInput(holder, ["hold"], 1, LEASE_TTL_S))
    if not held:
        raise BenchmarkError("the holder could not take the full limit's place")
    free = queued // 10
    await fill(store, "free", queued)
    await fill(store, "held", free)
    await fill(store, "held", queued - free, (FULL,))
    await fill(store, "labelled", free, labelled=True)
    await fill(store, "labelled", queued - free, (FULL,), labelled=True)
    spent: dict[str, list[float]] = {op: [] for op in QUEUES}
    for _ in range(rounds):
        for op in QUEUES:
            spent[op].append(await claim_round(store, bots[op], op, round_jobs, batch))
            await fill(store, op, round_jobs, labelled=op == "labelled")
    free_per_s, held_per_s, labelled_per_s = (round_jobs / median(spent[op]) for op in QUEUES)
    return free_per_s, held_per_s, labelled_per_s


@contextlib.asynccontextmanager
async def opened(url: str) -> AsyncIterator[Store]:
    store = open_store(url, SystemClock(), exponential_backoff())
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def run(options: argparse.Namespace) -> list[Figures]:
    figures: list[Figures] = []
    args = (options.queued, options.rounds, options.round_jobs, options.batch)
    with tempfile.TemporaryDirectory() as folder:
        where = Path(options.workdir or folder)
        async with opened(str(where / "controls.db")) as store:
            figures.append(Figures("sqlite", *await measure(store, *args)))
    if not options.skip_postgres:
        async with fresh_database(options.pg_dsn) as dsn, opened(dsn) as store:
            figures.append(Figures("postgresql", *await measure(store, *args)))
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--queued", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--round-jobs", type=int, default=500)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--pg-dsn", default=DEFAULT_PG_DSN)
    parser.add_argument("--skip-postgres", action="store_true")
    add_output_arguments(parser, "keep the SQLite database here")
    options = parser.parse_args(argv)
    if options.round_jobs > options.queued // 10:
        parser.error("--round-jobs must be at most a tenth of --queued (the plain jobs)")
    if options.workdir is not None:
        options.workdir.mkdir(parents=True, exist_ok=True)
    for figure in asyncio.run(run(options)):
        print(
            f"{figure.backend:<10} {options.queued:,} queued, 90 % behind a full limit: "
            f"{figure.constrained_per_s:,.0f} claim/s; unconstrained "
            f"{figure.unconstrained_per_s:,.0f} claim/s; ratio {figure.ratio:.0%}"
        )
        print(
            f"{figure.backend:<10} {options.queued:,} queued, 90 % behind a full limit, "
            f"half requiring region=eu: {figure.labelled_per_s:,.0f} claim/s; ratio to "
            f"unconstrained {figure.labelled_ratio:.0%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
