"""The report batch both backends write from, decided without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from coordinator.store.base import ReportInput, ReportOutcome
from coordinator.store.reports import ReportBatch
from coordinator.store.rules import NO_ERROR_TEXT, JobSnapshot

BOT = "bot_a"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
ACCEPTED, CONFLICT = ReportOutcome.ACCEPTED, ReportOutcome.CONFLICT


def batch_of(
    state: str = "running", attempt: int = 1, holder: str = BOT, **held: str | None
) -> ReportBatch:
    """One job `j` as read, and the attempts this bot held (`a1=None`: attempt 1, live)."""
    batch = ReportBatch(BOT, NOW, lambda attempt: 10.0 * attempt)
    snapshot = JobSnapshot(state, attempt, holder, 0, 3, None)
    batch.add_job("j", "sum", snapshot)
    for name, outcome in held.items():
        batch.add_attempt("j", int(name.removeprefix("a")), outcome)
    return batch


def test_the_holders_complete_succeeds_the_job_and_ends_its_attempt() -> None:
    batch = batch_of(a1=None)
    assert batch.apply_all([ReportInput("j", "complete", 1, {"total": 3})]) == [ACCEPTED]
    (change,) = batch.changes.values()
    assert (change.state, change.result, change.result_attempt) == ("succeeded", {"total": 3}, 1)
    assert change.finished_at == NOW and (change.read_state, change.read_attempt) == ("running", 1)
    assert batch.ended == {("j", 1): "succeeded"} and batch.finished == ["j"]


def test_an_earlier_attempts_result_wins_and_ends_another_bots_live_attempt() -> None:
    batch = batch_of(attempt=2, holder="bot_b", a1="expired")
    assert batch.apply_all([ReportInput("j", "complete", 1)]) == [ACCEPTED]
    assert batch.changes["j"].result == {} and batch.changes["j"].result_attempt == 1
    assert batch.ended == {("j", 2): "cancelled"}


def test_a_complete_of_a_queued_job_ends_no_attempt() -> None:
    batch = batch_of("queued", a1="failed")
    assert batch.apply_all([ReportInput("j", "complete", 1)]) == [ACCEPTED]
    assert batch.changes["j"].state == "succeeded" and batch.ended == {}


def test_a_retryable_fail_queues_the_job_after_the_delay_with_a_default_error() -> None:
    batch = batch_of(a1=None)
    assert batch.apply_all([ReportInput("j", "fail", 1, error="")]) == [ACCEPTED]
    change = batch.changes["j"]
    assert (change.state, change.run_at, change.error) == (
        "queued",
        NOW + timedelta(seconds=10),
        NO_ERROR_TEXT,
    )
    assert batch.ended == {("j", 1): "failed"} and batch.requeued_ops == ["sum"]
    assert batch.finished == []


def test_a_final_fail_fails_the_job() -> None:
    batch = batch_of(a1=None)
    assert batch.apply_all([ReportInput("j", "fail", 1, error="bad", retryable=False)]) == [
        ACCEPTED
    ]
    change = batch.changes["j"]
    assert (change.state, change.finished_at, change.error) == ("failed", NOW, "bad")
    assert batch.finished == ["j"]


def test_a_report_repeated_in_one_batch_sees_the_first_ones_effect() -> None:
    batch = batch_of(a1=None)
    reports = [ReportInput("j", "fail", 1, error="x"), ReportInput("j", "fail", 1, error="x")]
    assert batch.apply_all(reports) == [ACCEPTED, ACCEPTED]
    assert len(batch.changes) == 1 and batch.requeued_ops == ["sum"]


def test_the_last_write_of_a_job_wins_and_keeps_the_fence_as_read() -> None:
    batch = batch_of(a1=None)
    reports = [ReportInput("j", "fail", 1, error="x"), ReportInput("j", "complete", 1)]
    assert batch.apply_all(reports) == [ACCEPTED, ACCEPTED]
    change = batch.changes["j"]
    assert change.state == "succeeded" and (change.read_state, change.read_attempt) == (
        "running",
        1,
    )
    assert batch.ended == {("j", 1): "failed"}


def test_unknown_and_foreign_jobs_change_nothing() -> None:
    batch = batch_of(attempt=1, holder="bot_b")
    outcomes = batch.apply_all([ReportInput("j", "fail"), ReportInput("gone", "complete")])
    assert outcomes == [ReportOutcome.FORBIDDEN, ReportOutcome.NOT_FOUND]
    assert batch.changes == {} and batch.ended == {}


def test_a_fail_from_an_attempt_that_lost_its_lease_conflicts() -> None:
    batch = batch_of(attempt=2, holder="bot_b", a1="expired")
    assert batch.apply_all([ReportInput("j", "fail", 1)]) == [CONFLICT]
    assert batch.changes == {}
