"""Lost claim answers: two real bots (`MAX_CONCURRENCY` 8) reach a real coordinator (its
default intervals: heartbeats every 30 s) through the fault-injecting proxy.

The same fleet runs 2,000 `sum` jobs twice: on a clean network, then behind a proxy that
answers 10 % of requests 503, drops 5 % before the coordinator, delays 5 % by 1.5 s and
drops 5 % of answers after the coordinator acted (its 503s name no `Retry-After`, as a
load balancer's), with one 5-second cut. Every job ends succeeded with the right result,
and the faulty run ends within three times the clean run plus an allowance: a claim whose
answer was lost is retried under its `claim_id` and gets its jobs back at once, and a
report whose answer was lost is sent again after the outbox backoff, instead of leaving
the bot idle until heartbeats release the jobs. The allowance covers what still costs
time (the bots' way back from the cut, the claims held up by the delays); the figures
themselves go to benchmarks/faults.py.

The faults come from a seeded RNG; every wait polls a condition against a deadline.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.faultproxy import FaultProxy, Faults, summary
from tests.support.processes import (
    Coordinator,
    Process,
    logs_on_failure,
    start_bot,
    start_coordinator,
    wait_until,
)

pytestmark = pytest.mark.e2e

JOBS = 2000
BULK = 1000
BOTS = ("lost-1", "lost-2")
# A few jobs beyond the free slots: held jobs go through the faults too, while the
# requests stay many enough for the seeded faults to be drawn.
BOT_ENV = {"MAX_CONCURRENCY": "8", "BOT_PREFETCH": "4"}
CLEAN = Faults()
FAULTS = Faults(
    overload=0.10,
    drop_before=0.05,
    delay=0.05,
    min_delay_s=1.5,
    max_delay_s=1.5,
    drop_after=0.05,
    retry_after_s=None,  # a load balancer's 503 names no time
)
CUT_S = 5.0
SEED = 20261205
SLOWER_AT_MOST = 3.0
ALLOWANCE_S = 120.0
# Guards for a run that never ends (a clean run takes seconds): a failure, never a measure.
CLEAN_GUARD_S = 300.0
TERMINAL = ("succeeded", "failed", "cancelled")


@dataclass
class Rig:
    workdir: Path
    coordinator: Coordinator
    proxy: FaultProxy
    bots: list[Process]

    def processes(self) -> list[Process]:
        return [self.coordinator.process, *self.bots]

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        return self.coordinator.admin(method, path, body)

    def done(self) -> int:
        jobs: dict[str, int] = self.admin("GET", "/stats")["jobs"]
        return sum(jobs.get(state, 0) for state in TERMINAL)

    def submit(self, first: int) -> dict[str, int]:
        """JOBS sum jobs; each id with its right total."""
        payloads = [{"a": n, "b": 3 * n + 1} for n in range(first, first + JOBS)]
        ids: list[str] = []
        for start in range(0, JOBS, BULK):
            batch = [{"op": "sum", "payload": p} for p in payloads[start : start + BULK]]
            ids += self.admin("POST", "/jobs/bulk", {"jobs": batch})["ids"]
        return {job_id: p["a"] + p["b"] for job_id, p in zip(ids, payloads, strict=True)}

    def jobs(self, ids: set[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        cursor = ""
        while True:  # bounded: the jobs of both runs, 1000 a page
            page = self.admin("GET", "/jobs?limit=1000" + (f"&cursor={cursor}" if cursor else ""))
            found.update((job["id"], job) for job in page["jobs"] if job["id"] in ids)
            cursor = page.get("next_cursor") or ""
            if not cursor:
                return found


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    coordinator = start_coordinator(tmp_path)
    proxy = FaultProxy(coordinator.url, CLEAN, seed=SEED).start()
    rig = Rig(tmp_path, coordinator, proxy, [])
    try:
        with logs_on_failure(rig.processes):
            yield rig
    finally:
        for bot in rig.bots:
            bot.stop()
        proxy.stop()
        coordinator.process.stop()


def run(rig: Rig, first: int, deadline_s: float, cut_at: int | None = None) -> float:
    """Submit JOBS jobs, wait until all have ended (cutting the network once `cut_at` are
    done), check every result; the seconds it took."""
    done_before = rig.done()
    began = time.monotonic()
    expected = rig.submit(first)
    if cut_at is not None:
        wait_until(lambda: rig.done() - done_before >= cut_at, deadline_s, "jobs before the cut")
        rig.proxy.cut(CUT_S)
    left = deadline_s - (time.monotonic() - began)
    wait_until(lambda: rig.done() - done_before >= JOBS, max(left, 0.1), f"all {JOBS} jobs done")
    took = time.monotonic() - began
    jobs = rig.jobs(set(expected))
    assert set(jobs) == set(expected), "a job went missing"
    states = Counter(job["state"] for job in jobs.values())
    assert states == {"succeeded": JOBS}, states
    wrong = [i for i, total in expected.items() if jobs[i]["result"] != {"result": total}]
    assert not wrong, f"{len(wrong)} wrong results, e.g. {jobs[wrong[0]]}"
    return took


def test_lost_claim_answers_cost_one_retry_not_two_heartbeats(rig: Rig) -> None:
    for name in BOTS:
        rig.bots.append(start_bot(rig.workdir, [rig.proxy.api], name, env=BOT_ENV))
    wait_until(
        lambda: [b["state"] for b in rig.admin("GET", "/bots")["bots"]] == ["online"] * 2,
        CLEAN_GUARD_S,
        "both bots online",
    )
    clean_s = run(rig, 0, CLEAN_GUARD_S)
    print(f"clean: {JOBS} jobs in {clean_s:.1f} s")

    rig.proxy.faults = FAULTS
    faulty_s = run(rig, JOBS, SLOWER_AT_MOST * clean_s + ALLOWANCE_S, cut_at=JOBS // 4)
    counts = summary(rig.proxy)
    print(f"faulty: {JOBS} jobs in {faulty_s:.1f} s ({faulty_s / clean_s:.1f}x); proxy {counts}")
    for fault in ("overload", "drop_before", "delay", "drop_after", "cuts"):
        assert counts.get(fault, 0) > 0, counts
