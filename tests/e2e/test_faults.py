"""Faults: real bots (`python -m bot`) reach a real coordinator only through a
fault-injecting proxy (tests/e2e/faultproxy.py) that drops, delays and sheds requests, and
cuts the network twice: once for less than the bot lease (the bots go DEGRADED_NET and come
back through SYNC), once for longer (the coordinator marks them offline and requeues their
jobs; they come back, register again and deliver what their outboxes kept).

2,000 `sum` jobs all end `succeeded` with the right result; none is lost. The faults come
from a seeded RNG; every wait polls a condition against a deadline, and the only timed
waits are the cuts themselves.

The jobs keep the default `max_attempts` (3): a hand-out whose answer the proxy lost (a
claim held open upstream during a cut is answered into the void, as behind a real load
balancer) goes back to the queue at the bot's second heartbeat that does not list it,
without using up an attempt.
"""

from __future__ import annotations

import re
import signal
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
BOTS = ("f1", "f2", "f3")
DEADLINE_S = 120.0
# Bot lease 4 s (heartbeats every second): a 2 s cut is shorter, a 6 s cut longer.
SHORT_LEASES = ["--job-lease-ttl", "4", "--bot-lease-ttl", "4", "--reaper-interval", "0.25"]
SHORT_CUT_S = 2.0
LONG_CUT_S = 6.0
# A few jobs beyond the free slots: held jobs go through the faults too, while the
# requests stay many enough for the seeded faults to be drawn.
BOT_ENV = {
    "MIN_BACKOFF_MS": "50",
    "MAX_BACKOFF_MS": "1000",
    "MAX_CONCURRENCY": "8",
    "BOT_PREFETCH": "4",
}
FAULTS = Faults(
    drop_before=0.02, drop_after=0.02, delay=0.1, max_delay_s=0.05, overload=0.03, retry_after_s=1
)
SEED = 20260119
TERMINAL = ("succeeded", "failed", "cancelled")


@dataclass
class Rig:
    workdir: Path
    coordinator: Coordinator
    proxy: FaultProxy
    bots: dict[str, Process]

    def processes(self) -> list[Process]:
        return [self.coordinator.process, *self.bots.values()]

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        return self.coordinator.admin(method, path, body)

    def done(self) -> int:
        jobs: dict[str, int] = self.admin("GET", "/stats")["jobs"]
        return sum(jobs.get(state, 0) for state in TERMINAL)

    def bot_states(self) -> dict[str, tuple[str, str | None]]:
        """name -> (online/offline, reported lifecycle), as the coordinator has them."""
        bots = self.admin("GET", "/bots")["bots"]
        return {bot["name"]: (bot["state"], bot.get("lifecycle")) for bot in bots}

    def all_jobs(self) -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = []
        cursor = ""
        while True:  # bounded: JOBS / 1000 pages
            page = self.admin("GET", "/jobs?limit=1000" + (f"&cursor={cursor}" if cursor else ""))
            jobs += page["jobs"]
            cursor = page.get("next_cursor") or ""
            if not cursor:
                return jobs


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    coordinator = start_coordinator(tmp_path, extra_args=SHORT_LEASES)
    proxy = FaultProxy(coordinator.url, FAULTS, seed=SEED).start()
    bots: dict[str, Process] = {}
    rig = Rig(tmp_path, coordinator, proxy, bots)
    try:
        with logs_on_failure(rig.processes):
            yield rig
    finally:
        for bot in bots.values():
            bot.stop()
        proxy.stop()
        coordinator.process.stop()


def cut_and_watch(rig: Rig, seconds: float) -> set[tuple[str, str | None]]:
    """Cut the network for `seconds`; what the coordinator showed of the bots meanwhile."""
    seen: set[tuple[str, str | None]] = set()
    rig.proxy.cut(seconds)
    wait_until(lambda: rig.proxy.is_cut, 10, "the cut to begin")
    while rig.proxy.is_cut:  # bounded by the cut itself
        seen |= set(rig.bot_states().values())
        time.sleep(0.1)
    return seen


def moves(log: str) -> list[tuple[str, str]]:
    return re.findall(r"state (\w+) -> (\w+)", log)


def back_from_every_cut(bot: Process, cuts: int) -> bool:
    """The bot went DEGRADED_NET at least `cuts` times and has left it each time."""
    path = moves(bot.log())
    went = sum(1 for _, target in path if target == "DEGRADED_NET")
    left = sum(1 for source, _ in path if source == "DEGRADED_NET")
    return went >= cuts and left == went


def through_sync_after_every_cut(bot: Process, cuts: int) -> bool:
    """Back from every cut, and past REGISTER and BACKOFF to SYNC after the last one."""
    if not back_from_every_cut(bot, cuts):
        return False
    path = moves(bot.log())
    last = max(i for i, (_, target) in enumerate(path) if target == "DEGRADED_NET")
    return any(target not in ("REGISTER", "BACKOFF") for _, target in path[last + 1 :])


def test_two_thousand_jobs_through_drops_delays_overload_and_cuts(rig: Rig) -> None:
    payloads = [{"a": n, "b": 3 * n + 1} for n in range(JOBS)]
    ids: list[str] = []
    for start in range(0, JOBS, BULK):
        batch = [{"op": "sum", "payload": p} for p in payloads[start : start + BULK]]
        ids += rig.admin("POST", "/jobs/bulk", {"jobs": batch})["ids"]
    expected = {job_id: p["a"] + p["b"] for job_id, p in zip(ids, payloads, strict=True)}

    for name in BOTS:
        rig.bots[name] = start_bot(rig.workdir, [rig.proxy.api], name, env=BOT_ENV)
    began = time.monotonic()
    wait_until(lambda: rig.done() >= JOBS // 5, DEADLINE_S, "a fifth of the jobs done")
    # Every bot registered (the proxy may drop a bot's first tries), so each one sees
    # the cut as a registered bot.
    wait_until(
        lambda: [state for state, _ in rig.bot_states().values()] == ["online"] * len(BOTS),
        DEADLINE_S,
        "every bot online",
    )
    print(f"a fifth after {time.monotonic() - began:.1f} s")

    during_short = cut_and_watch(rig, SHORT_CUT_S)
    print(f"short cut over after {time.monotonic() - began:.1f} s")
    # Every bot back from the short cut before the long one: with fast bots, half the
    # jobs can be done before a slow one has left DEGRADED_NET, and the two cuts would
    # then be one outage for it.
    wait_until(
        lambda: all(back_from_every_cut(bot, 1) for bot in rig.bots.values()),
        DEADLINE_S,
        "every bot back from the short cut",
    )
    wait_until(lambda: rig.done() >= JOBS // 2, DEADLINE_S, "half of the jobs done")
    print(f"half after {time.monotonic() - began:.1f} s")
    during_long = cut_and_watch(rig, LONG_CUT_S)
    print(f"long cut over after {time.monotonic() - began:.1f} s")
    wait_until(lambda: rig.done() >= JOBS, DEADLINE_S, f"all {JOBS} jobs done")
    print(f"all after {time.monotonic() - began:.1f} s")
    # The jobs may all be done (by prefetching bots) while a bot still finds its way
    # back from the long cut: its path is read once it has.
    wait_until(
        lambda: all(through_sync_after_every_cut(bot, 2) for bot in rig.bots.values()),
        DEADLINE_S,
        "every bot back through SYNC after the long cut",
    )

    jobs = {job["id"]: job for job in rig.all_jobs()}
    print(f"listed after {time.monotonic() - began:.1f} s")
    assert set(jobs) == set(expected), "a job went missing"
    states = Counter(job["state"] for job in jobs.values())
    assert states == {"succeeded": JOBS}, states
    wrong = [i for i, total in expected.items() if jobs[i]["result"] != {"result": total}]
    assert not wrong, f"{len(wrong)} wrong results, e.g. {jobs[wrong[0]]}"

    # The long cut outlasted the bot lease: the coordinator gave the bots up meanwhile.
    assert any(state == "offline" for state, _ in during_long), during_long
    assert all(state == "online" for state, _ in during_short), during_short
    for name, bot in rig.bots.items():
        path = moves(bot.log())
        degraded = [i for i, (_, target) in enumerate(path) if target == "DEGRADED_NET"]
        assert len(degraded) >= 2, f"{name} did not degrade at each cut: {path}"
        for i in degraded:  # back through SYNC each time (registering again when forgotten)
            after = [t for _, t in path[i + 1 :] if t not in ("REGISTER", "BACKOFF")][:1]
            assert after == ["SYNC"], f"{name} after DEGRADED_NET: {path[i + 1 : i + 6]}"
        assert ("DEGRADED_NET", "REGISTER") in path, f"{name} never registered again"

    # The faults did happen (the seeded RNG drew them), and the bots still leave cleanly.
    counts = summary(rig.proxy)
    for fault in ("drop_before", "drop_after", "delay", "overload", "cut"):
        assert counts.get(fault, 0) > 0, counts
    for bot in rig.bots.values():
        bot.signal(signal.SIGTERM)
    assert {name: bot.wait(60) for name, bot in rig.bots.items()} == dict.fromkeys(BOTS, 0)
    print(f"bots gone after {time.monotonic() - began:.1f} s")
    attempts = Counter(job["attempt"] for job in jobs.values())
    print(f"proxy: {counts}; attempts per job: {sorted(attempts.items())}")
    print(f"bots seen during the long cut: {sorted(during_long)}")
