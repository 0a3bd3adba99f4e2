"""Prometheus metrics of one coordinator app, in its own registry (never the global one).

Counters and histograms count what this process did. Gauges (jobs by state, bots
by state, the oldest queued job, each limit's use) describe the shared database, so they are read
from `store.stats()` when scraped, at most once per `refresh_s`.
"""

from __future__ import annotations

import collections
import logging
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TypeVar

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from botfleet.clock import Clock
from botfleet.protocol.messages import JobState
from coordinator.store.base import ExpiryOutcome, JobRecord, Store, StoreError, SweepOutcome
from coordinator.store.schedules import FiredSchedule

log = logging.getLogger(__name__)

__all__ = ["CONTENT_TYPE", "Metrics"]

JOB_STATES: tuple[JobState, ...] = ("queued", "running", "succeeded", "failed", "cancelled")
UNKNOWN_OP = "unknown"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 600, 3600)
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14_400, 86_400)


class Metrics:
    def __init__(self, clock: Clock, refresh_s: float = 2.0, ops_remembered: int = 50_000) -> None:
        self._clock = clock
        self._refresh_s = refresh_s
        self._refreshed_at: float | None = None
        # job id -> (op, attempt) of the jobs handed out here, so reports and expiries
        # count by op (a report names only the job), and a claim handed out again for a
        # repeated claim_id (same attempt) is not counted twice. Bounded; a job claimed
        # elsewhere counts as unknown.
        self._ops: OrderedDict[str, tuple[str, int]] = OrderedDict()
        self._ops_remembered = ops_remembered
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.submitted = Counter("botfleet_jobs_submitted", "Jobs created", ["op"], registry=r)
        self.claimed = Counter("botfleet_jobs_claimed", "Jobs handed out", ["op"], registry=r)
        self.succeeded = Counter(
            "botfleet_jobs_succeeded", "Completions accepted", ["op"], registry=r
        )
        self.failed = Counter(
            "botfleet_jobs_failed",
            "Failure reports accepted (the job may be retried)",
            ["op"],
            registry=r,
        )
        self.expired = Counter(
            "botfleet_job_leases_expired",
            "Job leases that ran out, by what became of the job",
            ["op", "outcome"],
            registry=r,
        )
        self.claims_lost = Counter(
            "botfleet_claim_answers_lost",
            "Jobs whose claim answer never reached the bot (queued again, no attempt used)",
            ["op"],
            registry=r,
        )
        self.jobs_released = Counter(
            "botfleet_jobs_released",
            "Prefetched jobs a bot gave back unstarted (queued again, no attempt used)",
            ["op"],
            registry=r,
        )
        self.bots_expired = Counter(
            "botfleet_bot_leases_expired", "Bots marked offline by the reaper", registry=r
        )
        self.jobs_expired = Counter(
            "botfleet_jobs_expired",
            "Queued jobs cancelled because their expires_in_ms ran out",
            registry=r,
        )
        self.jobs_deleted = Counter(
            "botfleet_jobs_deleted", "Finished jobs deleted past their retention", registry=r
        )
        self.bots_forgotten = Counter(
            "botfleet_bots_forgotten", "Offline bots deleted past their retention", registry=r
        )
        self.log_lines_received = Counter(
            "botfleet_job_log_lines_received",
            "Job log lines received, by bot",
            ["bot_id"],
            registry=r,
        )
        self.log_lines_dropped = Counter(
            "botfleet_job_log_lines_dropped",
            "Job log lines lost: past a job's cap here, or a full buffer on the bot",
            ["bot_id"],
            registry=r,
        )
        self.claim_seconds = Histogram(
            "botfleet_claim_duration_seconds",
            "Time of one claim in the store (without long-poll waiting)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_wait_seconds = Histogram(
            "botfleet_job_queue_wait_seconds",
            "From a job becoming claimable (run_at) to its hand-out",
            ["op"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.schedule_lateness_seconds = Histogram(
            "botfleet_schedule_lateness_seconds",
            "From a schedule's due time to its job's creation (fired here)",
            buckets=LATENESS_BUCKETS,
            registry=r,
        )
        self.jobs = Gauge("botfleet_jobs", "Jobs by state", ["state"], registry=r)
        self.jobs_by_op = Gauge(
            "botfleet_jobs_by_op", "Jobs by op and state", ["op", "state"], registry=r
        )
        self.oldest_queued_age = Gauge(
            "botfleet_oldest_queued_job_age_seconds",
            "Age of the oldest claimable queued job (0 when none)",
            registry=r,
        )
        self.bots = Gauge("botfleet_bots", "Bots by state", ["state"], registry=r)
        self.waiting = Gauge(
            "botfleet_waiting_requests",
            "Long-poll claims and job reads waiting right now",
            registry=r,
        )
        self.limit_held_back = Gauge(
            "botfleet_limit_held_back_jobs",
            "Jobs ready to run that a full limit keeps from starting, by limit",
            ["limit"],
            registry=r,
        )
        self.limit_running = Gauge(
            "botfleet_limit_running_jobs", "Jobs running under each limit", ["limit"], registry=r
        )
        self.limit_start_rate = Gauge(
            "botfleet_limit_starts_per_second",
            "Jobs started under each limit per second, over the last 10 s across the fleet",
            ["limit"],
            registry=r,
        )
        self.store_up = Gauge(
            "botfleet_store_up", "1 when the last stats read succeeded", registry=r
        )

        self._submitted_by_op: dict[str, Counter] = {}
        self._claimed_by_op: dict[str, Counter] = {}
        self._succeeded_by_op: dict[str, Counter] = {}
        self._failed_by_op: dict[str, Counter] = {}
        self._queue_wait_by_op: dict[str, Histogram] = {}

    def count_waiting(self, waiting: Callable[[], float]) -> None:
        """Read the number of waiting requests from `waiting` at each scrape."""
        self.waiting.set_function(waiting)

    # ---- events
    # Each event finds its labelled children in plain dicts: `labels()` validates and
    # locks on every call, and these run for every job.
    def observe_submitted(self, ops: Iterable[str]) -> None:
        if isinstance(ops, tuple) and len(ops) == 1:  # a single submit
            _child(self._submitted_by_op, self.submitted, ops[0]).inc()
            return
        for op, count in collections.Counter(ops).items():  # one labelled child per op, not per job
            _child(self._submitted_by_op, self.submitted, op).inc(count)

    def observe_claim(self, duration_s: float, jobs: list[JobRecord]) -> None:
        self.claim_seconds.observe(duration_s)
        if not jobs:
            return
        now = self._clock.now()
        ops = self._ops
        waits: dict[str, list[float]] = {}
        for job in jobs:
            op, job_id, attempt = job.op, job.id, job.attempt
            seen = ops.get(job_id)
            if seen is not None:
                if seen == (op, attempt):
                    continue  # handed out again to a repeated claim: already counted
                ops.move_to_end(job_id)  # a new attempt: remembered as the latest
            ops[job_id] = (op, attempt)  # a new key goes last
            waits.setdefault(op, []).append((now - job.run_at).total_seconds())
        for op, op_waits in waits.items():
            _child(self._claimed_by_op, self.claimed, op).inc(len(op_waits))
            _observe_all(_child(self._queue_wait_by_op, self.queue_wait_seconds, op), op_waits)
        while len(ops) > self._ops_remembered:
            ops.popitem(last=False)

    def observe_log_lines(self, bot_id: str, received: int, dropped: int) -> None:
        self.log_lines_received.labels(bot_id).inc(received)
        if dropped:
            self.log_lines_dropped.labels(bot_id).inc(dropped)

    def observe_report(self, job_id: str, action: str) -> None:
        """An accepted report (counted once: a repeat finds the job forgotten)."""
        self.observe_reports(((job_id, action),))

    def observe_reports(self, accepted: Iterable[tuple[str, str]]) -> None:
        """Accepted reports, (job id, action) each: `observe_report` of each, with one
        increment per op and action rather than one per job."""
        ops = self._ops
        succeeded: dict[str, int] = {}
        failed: dict[str, int] = {}
        for job_id, action in accepted:
            entry = ops.pop(job_id, None)
            op = UNKNOWN_OP if entry is None else entry[0]
            counts = succeeded if action == "complete" else failed
            counts[op] = counts.get(op, 0) + 1
        for op, count in succeeded.items():
            _child(self._succeeded_by_op, self.succeeded, op).inc(count)
        for op, count in failed.items():
            _child(self._failed_by_op, self.failed, op).inc(count)

    def _forget(self, job_id: str) -> str:
        """The op of a job handed out here, which no longer counts as handed out."""
        entry = self._ops.pop(job_id, None)
        return UNKNOWN_OP if entry is None else entry[0]

    def observe_lost_claims(self, job_ids: Iterable[str]) -> None:
        for job_id in job_ids:
            self.claims_lost.labels(self._forget(job_id)).inc()

    def observe_released(self, job_ids: Iterable[str]) -> None:
        """Jobs given back unstarted: counted, and no longer handed out here."""
        counts = collections.Counter(self._forget(job_id) for job_id in job_ids)
        for op, count in counts.items():
            self.jobs_released.labels(op).inc(count)

    def observe_expiry(self, outcome: ExpiryOutcome) -> None:
        for job_id in outcome.requeued:
            self.expired.labels(self._forget(job_id), "requeued").inc()
        for job_id in outcome.failed:
            self.expired.labels(self._forget(job_id), "failed").inc()
        if outcome.bots_offline:
            self.bots_expired.inc(len(outcome.bots_offline))

    def observe_sweep(self, outcome: SweepOutcome) -> None:
        if outcome.expired:
            self.jobs_expired.inc(len(outcome.expired))
        if outcome.jobs_deleted:
            self.jobs_deleted.inc(outcome.jobs_deleted)
        if outcome.bots_forgotten:
            self.bots_forgotten.inc(outcome.bots_forgotten)

    def observe_fired(self, fired: FiredSchedule) -> None:
        lateness = (fired.fired_at - fired.due_at).total_seconds()
        self.schedule_lateness_seconds.observe(max(0.0, lateness))

    # ---- scrape
    async def render(self, store: Store) -> bytes:
        now = self._clock.monotonic()
        if self._refreshed_at is None or now - self._refreshed_at >= self._refresh_s:
            self._refreshed_at = now
            await self._refresh(store)
        return generate_latest(self.registry)

    async def _refresh(self, store: Store) -> None:
        try:
            stats = await store.stats()
        except StoreError as exc:
            log.warning("metrics: cannot read stats from the store: %s", exc)
            self.store_up.set(0)
            return
        self.store_up.set(1)
        for job_state in JOB_STATES:
            self.jobs.labels(job_state).set(stats.jobs_by_state.get(job_state, 0))
        self.jobs_by_op.clear()
        for op, by_state in stats.jobs_by_op.items():
            for op_state, count in by_state.items():
                self.jobs_by_op.labels(op, op_state).set(count)
        for bot_state in ("online", "offline"):
            self.bots.labels(bot_state).set(stats.bots_by_state.get(bot_state, 0))
        oldest = stats.oldest_queued_at
        age = 0.0 if oldest is None else (self._clock.now() - oldest).total_seconds()
        self.oldest_queued_age.set(max(0.0, age))
        await self._refresh_limits(store)

    async def _refresh_limits(self, store: Store) -> None:
        """Each limit's use, from the shared database (a deleted limit's series go)."""
        try:
            limits = await store.list_limits()
            queued = await store.queued_by_limit() if limits else {}
        except StoreError as exc:
            log.warning("metrics: cannot read the limits from the store: %s", exc)
            return
        for gauge in (self.limit_held_back, self.limit_running, self.limit_start_rate):
            gauge.clear()
        for limit in limits:
            self.limit_held_back.labels(limit.name).set(limit.held_back(queued.get(limit.name, 0)))
            self.limit_running.labels(limit.name).set(limit.running)
            self.limit_start_rate.labels(limit.name).set(round(limit.starts_per_second, 3))


M = TypeVar("M", Counter, Histogram)


def _observe_all(histogram: Histogram, amounts: list[float]) -> None:
    """`histogram.observe(max(0, amount))` of each amount, with one increment per bucket
    instead of one per amount: `observe` takes a lock and walks the buckets each time,
    and a claim of many jobs observes each one's wait. Reaches into prometheus_client's
    histogram (its bounds, buckets and sum), as `observe` itself does."""
    bounds = histogram._upper_bounds
    counts = [0] * len(bounds)
    total = 0.0
    for amount in amounts:
        amount = max(0.0, amount)
        total += amount
        counts[bisect_left(bounds, amount)] += 1  # the first bound >= amount, as observe
    histogram._sum.inc(total)
    for bucket, count in zip(histogram._buckets, counts, strict=True):
        if count:
            bucket.inc(count)


def _child(children: dict[str, M], metric: M, op: str) -> M:
    """`metric.labels(op)`, kept: a labelled child lives as long as its parent here (the
    ops are never removed from these metrics)."""
    child = children.get(op)
    if child is None:
        child = children[op] = metric.labels(op)
    return child
