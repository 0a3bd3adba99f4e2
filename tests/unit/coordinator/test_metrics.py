"""Counters and histograms by op, as a scrape reads them."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from botfleet.clock import FakeClock
from coordinator.metrics import UNKNOWN_OP, Metrics
from coordinator.store.base import ExpiryOutcome, JobRecord

NOW = datetime(2026, 1, 19, 10, 0, tzinfo=UTC)


def _job(job_id: str, op: str, waited_s: float = 0.0) -> JobRecord:
    return JobRecord(
        id=job_id,
        op=op,
        payload={},
        state="running",
        priority=0,
        attempt=1,
        max_attempts=3,
        created_at=NOW,
        run_at=NOW - timedelta(seconds=waited_s),
    )


def _value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_submits_claims_and_reports_count_by_op() -> None:
    metrics = Metrics(FakeClock(NOW))
    metrics.observe_submitted(("sum",))
    metrics.observe_submitted(("sum",))
    metrics.observe_submitted(op for op in ("sum", "subtract", "subtract"))
    metrics.observe_claim(0.002, [_job("a", "sum", 0.02), _job("b", "subtract"), _job("c", "sum")])
    metrics.observe_claim(0.001, [])
    metrics.observe_report("a", "complete")
    metrics.observe_report("a", "complete")  # a repeat: the job is forgotten
    metrics.observe_report("b", "fail")
    assert _value(metrics, "botfleet_jobs_submitted_total", op="sum") == 3
    assert _value(metrics, "botfleet_jobs_submitted_total", op="subtract") == 2
    assert _value(metrics, "botfleet_jobs_claimed_total", op="sum") == 2
    assert _value(metrics, "botfleet_jobs_claimed_total", op="subtract") == 1
    assert _value(metrics, "botfleet_claim_duration_seconds_count") == 2
    assert _value(metrics, "botfleet_job_queue_wait_seconds_count", op="sum") == 2
    assert _value(metrics, "botfleet_job_queue_wait_seconds_bucket", op="sum", le="0.01") == 1
    assert _value(metrics, "botfleet_jobs_succeeded_total", op="sum") == 1
    assert _value(metrics, "botfleet_jobs_succeeded_total", op=UNKNOWN_OP) == 1
    assert _value(metrics, "botfleet_jobs_failed_total", op="subtract") == 1


def test_a_batch_of_reports_counts_as_its_reports_one_by_one() -> None:
    metrics = Metrics(FakeClock(NOW))
    metrics.observe_claim(0.001, [_job("a", "sum"), _job("b", "sum"), _job("c", "subtract")])
    metrics.observe_reports(
        [("a", "complete"), ("b", "fail"), ("c", "complete"), ("a", "complete")]
    )
    assert _value(metrics, "botfleet_jobs_succeeded_total", op="sum") == 1
    assert _value(metrics, "botfleet_jobs_succeeded_total", op="subtract") == 1
    assert _value(metrics, "botfleet_jobs_succeeded_total", op=UNKNOWN_OP) == 1  # the repeat
    assert _value(metrics, "botfleet_jobs_failed_total", op="sum") == 1
    metrics.observe_reports([])
    assert _value(metrics, "botfleet_jobs_failed_total", op="sum") == 1


def test_expiries_count_by_op_and_outcome() -> None:
    metrics = Metrics(FakeClock(NOW))
    metrics.observe_claim(0.001, [_job("a", "sum"), _job("b", "sum")])
    metrics.observe_expiry(ExpiryOutcome(requeued=("a",), failed=("b",), bots_offline=("bot_1",)))
    assert _value(metrics, "botfleet_job_leases_expired_total", op="sum", outcome="requeued") == 1
    assert _value(metrics, "botfleet_job_leases_expired_total", op="sum", outcome="failed") == 1
    assert _value(metrics, "botfleet_bot_leases_expired_total") == 1


def test_a_claim_handed_out_again_counts_once() -> None:
    metrics = Metrics(FakeClock(NOW))
    first = _job("a", "sum")
    metrics.observe_claim(0.001, [first])
    metrics.observe_claim(0.001, [first])  # a repeated claim_id gets the same attempt back
    assert _value(metrics, "botfleet_jobs_claimed_total", op="sum") == 1
    assert _value(metrics, "botfleet_job_queue_wait_seconds_count", op="sum") == 1
    again = dataclasses.replace(first, attempt=2)
    metrics.observe_claim(0.001, [again])  # its lease expired: a new attempt is a new claim
    assert _value(metrics, "botfleet_jobs_claimed_total", op="sum") == 2


def test_a_claim_of_many_jobs_observes_their_waits_as_one_by_one() -> None:
    waits = [-1.0, 0.0, 0.01, 0.010001, 0.5, 7.0, 3600.0, 90_000.0, 1e9]
    batch = Metrics(FakeClock(NOW))
    batch.observe_claim(0.001, [_job(f"j{i}", "sum", wait) for i, wait in enumerate(waits)])
    single = Metrics(FakeClock(NOW))
    for wait in waits:
        single.queue_wait_seconds.labels("sum").observe(max(0.0, wait))

    def samples(metrics: Metrics) -> dict[tuple[str, str], float]:
        [family] = [f for f in metrics.registry.collect() if f.name.endswith("queue_wait_seconds")]
        found = {(s.name, s.labels.get("le", "")): s.value for s in family.samples}
        return {key: value for key, value in found.items() if not key[0].endswith("_created")}

    assert samples(batch) == samples(single)
    assert _value(batch, "botfleet_job_queue_wait_seconds_count", op="sum") == len(waits)
