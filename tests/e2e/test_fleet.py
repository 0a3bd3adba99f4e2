"""A fleet of real processes: `python -m coordinator` and three `python -m bot` run 1,000
`sum` jobs, all succeed with the right result; also when a bot is SIGKILLed in the middle,
and when the coordinator is down for five seconds in the middle.

Each test waits on GET /v1/stats (deadline 120 s), never on fixed sleeps; the only timed
wait is the outage itself. On a failure the processes' logs are printed.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from botfleet.clock import SystemClock
from coordinator.store import open_store
from coordinator.store.base import AttemptRecord
from tests.support.processes import (
    Coordinator,
    Process,
    bot_state_dir,
    logs_on_failure,
    port_open,
    start_bot,
    start_coordinator,
    wait_until,
)

pytestmark = pytest.mark.e2e

JOBS = 1000
BULK = 1000  # the most one POST /v1/jobs/bulk takes
DEADLINE_S = 120.0
BOT_NAMES = ("bot-a", "bot-b", "bot-c")
TERMINAL = ("succeeded", "failed", "cancelled")
# Short leases, so the jobs of a killed bot (or those whose claim answer a killed
# coordinator never sent) come back within seconds. The coordinator tells the bots to
# heartbeat every bot_lease_ttl / 4 = 1 s in its register answer.
SHORT_LEASES = ["--job-lease-ttl", "3", "--bot-lease-ttl", "4", "--reaper-interval", "0.25"]
# Bots retry a coordinator that is away at most a second apart (default: up to 60 s).
# Claims for the free slots only: the tests act in the middle of a run of trivial jobs,
# which prefetch makes too short to act in (a bot killed while it holds prefetched jobs
# is tests/e2e/test_prefetch.py's).
BOT_ENV = {"MIN_BACKOFF_MS": "100", "MAX_BACKOFF_MS": "1000", "BOT_PREFETCH": "0"}
OUTAGE_S = 5.0
OUTBOX_FILE = "outbox.jsonl"


@dataclass
class Fleet:
    workdir: Path
    coordinator: Coordinator
    bots: dict[str, Process]
    bot_ids: dict[str, str]  # name -> bot_id

    def processes(self) -> list[Process]:
        return [self.coordinator.process, *self.bots.values()]

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        return self.coordinator.admin(method, path, body)

    def job_counts(self) -> dict[str, int]:
        counts: dict[str, int] = self.admin("GET", "/stats")["jobs"]
        return counts

    def online_bots(self) -> dict[str, str]:
        bots = self.admin("GET", "/bots")["bots"]
        return {bot["name"]: bot["id"] for bot in bots if bot["state"] == "online"}

    def all_bots_online(self) -> bool:
        exited = [name for name, bot in self.bots.items() if not bot.alive()]
        assert not exited, f"bots exited: {exited}"
        return set(self.online_bots()) == set(self.bots)

    def running_jobs_of(self, bot_id: str) -> list[str]:
        running: list[str] = self.admin("GET", f"/bots/{bot_id}")["running"]
        return running

    def submit_sums(self, count: int) -> dict[str, dict[str, int]]:
        """`count` sum jobs with distinct operands; job id -> payload."""
        payloads = [{"a": i, "b": 7 * i + 3} for i in range(count)]
        submitted: dict[str, dict[str, int]] = {}
        for start in range(0, count, BULK):
            chunk = payloads[start : start + BULK]
            ids = self.admin(
                "POST", "/jobs/bulk", {"jobs": [{"op": "sum", "payload": p} for p in chunk]}
            )
            submitted.update(zip(ids["ids"], chunk, strict=True))
        return submitted

    def wait_for_succeeded(self, count: int) -> None:
        wait_until(
            lambda: self.job_counts().get("succeeded", 0) >= count,
            DEADLINE_S,
            f"{count} jobs succeeded",
        )

    def wait_all_terminal(self, count: int) -> None:
        def done() -> bool:
            counts = self.job_counts()
            return sum(counts.get(state, 0) for state in TERMINAL) >= count

        wait_until(done, DEADLINE_S, f"all {count} jobs terminal")

    def all_jobs(self) -> dict[str, dict[str, Any]]:
        jobs: dict[str, dict[str, Any]] = {}
        cursor = ""
        for _ in range(100):  # bounded: far more pages than the tests make
            page = self.admin("GET", "/jobs?limit=1000" + (f"&cursor={cursor}" if cursor else ""))
            jobs.update((job["id"], job) for job in page["jobs"])
            cursor = page["next_cursor"] or ""
            if not cursor:
                break
        return jobs

    def outbox(self, name: str) -> list[dict[str, Any]]:
        """The reports bot `name` keeps undelivered (its outbox file, torn lines left out)."""
        path = bot_state_dir(self.workdir, name) / OUTBOX_FILE
        if not path.exists():
            return []
        reports = []
        for line in path.read_text(errors="replace").splitlines():
            try:
                reports.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line being written right now
        return reports

    def stop(self) -> None:
        for process in [*self.bots.values(), self.coordinator.process]:
            process.stop()


def start_fleet(workdir: Path, coordinator_args: list[str]) -> Fleet:
    coordinator = start_coordinator(workdir, extra_args=coordinator_args)
    fleet = Fleet(workdir, coordinator, {}, {})
    try:
        for name in BOT_NAMES:
            fleet.bots[name] = start_bot(workdir, [coordinator.api], name, env=BOT_ENV)
        with logs_on_failure(fleet.processes):
            wait_until(fleet.all_bots_online, what="three bots online")
    except BaseException:
        fleet.stop()
        raise
    fleet.bot_ids = fleet.online_bots()
    return fleet


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    """The coordinator with its default leases, three bots online."""
    started = start_fleet(tmp_path, [])
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def short_lease_fleet(tmp_path: Path) -> Iterator[Fleet]:
    """The coordinator with leases of a few seconds, three bots online."""
    started = start_fleet(tmp_path, SHORT_LEASES)
    try:
        yield started
    finally:
        started.stop()


def assert_all_succeeded_correctly(
    jobs: dict[str, dict[str, Any]], submitted: dict[str, dict[str, int]]
) -> None:
    assert set(jobs) == set(submitted), "jobs lost or made up"
    wrong = [
        (job_id, job["state"], job["payload"], job.get("result"), job.get("error"))
        for job_id, job in jobs.items()
        if job["state"] != "succeeded"
        or job["payload"] != submitted[job_id]
        or job.get("result") != {"result": submitted[job_id]["a"] + submitted[job_id]["b"]}
    ]
    assert not wrong, f"{len(wrong)} of {len(jobs)} jobs wrong, e.g. {wrong[:5]}"


def read_attempts(db_url: str, job_ids: list[str]) -> dict[str, list[AttemptRecord]]:
    """Each job's attempt history, read from the database once the coordinator is stopped."""

    async def read() -> dict[str, list[AttemptRecord]]:
        store = open_store(db_url, SystemClock(), lambda attempt: 1.0)
        await store.open()
        try:
            return {job_id: await store.list_attempts(job_id) for job_id in job_ids}
        finally:
            await store.close()

    return asyncio.run(read())


def test_three_bots_run_a_thousand_jobs_each_once(fleet: Fleet) -> None:
    with logs_on_failure(fleet.processes):
        submitted = fleet.submit_sums(JOBS)
        fleet.wait_all_terminal(JOBS)
        jobs = fleet.all_jobs()
        assert_all_succeeded_correctly(jobs, submitted)
        # A calm run: every job ran once, and all three bots shared the work.
        assert [job_id for job_id, job in jobs.items() if job["attempt"] != 1] == []
        workers = {job["bot_id"] for job in jobs.values()}
        assert workers == set(fleet.bot_ids.values()), (workers, fleet.bot_ids)
        assert all(bot.alive() for bot in fleet.bots.values())


def freeze_while_holding_jobs(fleet: Fleet, name: str, tries: int = 50) -> list[str]:
    """SIGSTOP bot `name` at a moment the coordinator shows it holding running jobs.

    A `sum` job is over in a moment, so the bot is frozen first and then asked about;
    if it held nothing just then, it runs on and is tried again.
    """
    bot, bot_id = fleet.bots[name], fleet.bot_ids[name]
    for _ in range(tries):
        bot.signal(signal.SIGSTOP)
        held = fleet.running_jobs_of(bot_id)
        if held:
            return held
        bot.signal(signal.SIGCONT)
        wait_until(lambda: bool(fleet.running_jobs_of(bot_id)), what=f"{name} to hold a job")
    raise AssertionError(f"{name} never held a job when frozen in {tries} tries")


def test_a_bot_killed_mid_run_has_its_jobs_finished_by_the_others(
    short_lease_fleet: Fleet,
) -> None:
    fleet = short_lease_fleet
    victim = "bot-a"
    victim_id = fleet.bot_ids[victim]
    with logs_on_failure(fleet.processes):
        submitted = fleet.submit_sums(JOBS)
        fleet.wait_for_succeeded(JOBS // 4)
        held = freeze_while_holding_jobs(fleet, victim)
        fleet.bots[victim].kill()  # SIGKILL while holding `held`
        assert fleet.job_counts().get("succeeded", 0) < JOBS, "the kill came after the run"

        fleet.wait_all_terminal(JOBS)
        jobs = fleet.all_jobs()
        assert_all_succeeded_correctly(jobs, submitted)
        wait_until(lambda: victim not in fleet.online_bots(), what="the dead bot offline")
        assert all(fleet.bots[name].alive() for name in BOT_NAMES if name != victim)
        fleet.stop()

        attempts = read_attempts(fleet.coordinator.db_url, list(jobs))
        # The jobs the dead bot never finished: an attempt of its that ended otherwise.
        orphaned = {
            job_id
            for job_id, history in attempts.items()
            if any(a.bot_id == victim_id and a.outcome != "succeeded" for a in history)
        }
        assert held and orphaned, (held, orphaned)
        # Its leases ran out (or it was marked offline first); nothing failed.
        ends = {a.outcome for job_id in orphaned for a in attempts[job_id] if a.bot_id == victim_id}
        assert ends - {"succeeded"} <= {"expired", "released"}, ends
        finished_elsewhere = {job_id for job_id in orphaned if jobs[job_id]["bot_id"] != victim_id}
        assert finished_elsewhere == orphaned, [attempts[j] for j in orphaned - finished_elsewhere]


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_reports_made_while_the_coordinator_is_down_reach_it_when_it_returns(
    short_lease_fleet: Fleet, signum: int
) -> None:
    fleet = short_lease_fleet
    coordinator = fleet.coordinator
    with logs_on_failure(fleet.processes):
        submitted = fleet.submit_sums(JOBS)
        fleet.wait_for_succeeded(JOBS // 4)
        coordinator.process.signal(signum)
        coordinator.process.wait(30)
        down_at = time.monotonic()
        assert not port_open(coordinator.port)

        # The bots finish the jobs they hold; the reports they cannot deliver are kept.
        wait_until(
            lambda: any(fleet.outbox(name) for name in BOT_NAMES),
            OUTAGE_S,
            "a bot to keep a report in its outbox",
        )
        # The outage itself (not a wait for an event): the coordinator stays away 5 s.
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        kept = {report["job_id"]: report for name in BOT_NAMES for report in fleet.outbox(name)}
        assert kept, "the outboxes emptied while the coordinator was away"
        coordinator.restart()

        fleet.wait_all_terminal(JOBS)
        wait_until(
            lambda: not any(fleet.outbox(name) for name in BOT_NAMES),
            DEADLINE_S,
            "every outbox to empty",
        )
        jobs = fleet.all_jobs()
        assert_all_succeeded_correctly(jobs, submitted)
        for job_id, report in kept.items():
            payload = submitted[job_id]
            assert report["action"] == "complete", report
            assert report["result"] == {"result": payload["a"] + payload["b"]}, report
        assert all(bot.alive() for bot in fleet.bots.values())
        for name in BOT_NAMES:
            assert (bot_state_dir(fleet.workdir, name) / OUTBOX_FILE).read_bytes() == b""
        fleet.stop()

        attempts = read_attempts(coordinator.db_url, list(jobs))
        twice = {
            job_id: history
            for job_id, history in attempts.items()
            if [a.outcome for a in history].count("succeeded") > 1
            or any(a.outcome == "failed" or a.ended_at is None for a in history)
        }
        assert twice == {}, list(twice.items())[:5]
