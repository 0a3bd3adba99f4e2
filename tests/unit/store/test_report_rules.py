"""The report rules shared by every backend, decided without a database."""

from __future__ import annotations

import pytest

from coordinator.store.base import ReportInput, ReportOutcome
from coordinator.store.rules import Effect, JobSnapshot, command_took_effect, decide_report

BOT = "bot_a"


def job(state: str = "running", attempt: int = 1, bot_id: str = BOT, **kw: int) -> JobSnapshot:
    return JobSnapshot(
        state=state,
        attempt=attempt,
        bot_id=bot_id,
        attempt_base=kw.get("attempt_base", 0),
        max_attempts=kw.get("max_attempts", 3),
        result_attempt=kw.get("result_attempt"),
    )


def delay(attempt: int) -> float:
    return 10.0 * attempt


def test_unknown_job() -> None:
    report = ReportInput(job_id="j", action="complete")
    assert decide_report(None, {}, BOT, report, delay).outcome is ReportOutcome.NOT_FOUND


def test_never_handed_to_this_bot() -> None:
    report = ReportInput(job_id="j", action="fail")
    assert decide_report(job(), {}, BOT, report, delay).outcome is ReportOutcome.FORBIDDEN


def test_attempt_defaults_to_the_latest_held() -> None:
    decision = decide_report(
        job(attempt=3), {1: "expired", 3: None}, BOT, ReportInput("j", "complete"), delay
    )
    assert (decision.outcome, decision.effect, decision.attempt) == (
        ReportOutcome.ACCEPTED,
        Effect.SUCCEED,
        3,
    )


def test_attempt_it_never_held_conflicts() -> None:
    decision = decide_report(job(), {1: None}, BOT, ReportInput("j", "complete", 2), delay)
    assert decision.outcome is ReportOutcome.CONFLICT


def test_fail_retries_after_the_policy_delay_counted_from_the_budget() -> None:
    decision = decide_report(
        job(attempt=5, attempt_base=3), {5: None}, BOT, ReportInput("j", "fail"), delay
    )
    assert (decision.effect, decision.retry_delay_s) == (Effect.RETRY, 20.0)


def test_fail_retry_after_ms_wins_over_the_policy() -> None:
    report = ReportInput("j", "fail", retry_after_ms=250)
    assert decide_report(job(), {1: None}, BOT, report, delay).retry_delay_s == 0.25


def test_fail_without_attempts_left_or_not_retryable_fails() -> None:
    spent = decide_report(job(attempt=3), {3: None}, BOT, ReportInput("j", "fail"), delay)
    final = decide_report(job(), {1: None}, BOT, ReportInput("j", "fail", retryable=False), delay)
    assert spent.effect is Effect.FAIL and final.effect is Effect.FAIL


def test_repeat_of_an_applied_fail_is_accepted_without_effect() -> None:
    decision = decide_report(job("queued"), {1: "failed"}, BOT, ReportInput("j", "fail"), delay)
    assert (decision.outcome, decision.effect) == (ReportOutcome.ACCEPTED, Effect.NONE)


def test_unknown_action_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown report action"):
        decide_report(job(), {1: None}, BOT, ReportInput("j", "explode"), delay)


@pytest.mark.parametrize(
    ("command", "lifecycle", "done"),
    [
        ("drain", None, False),
        ("drain", "BUSY", False),
        ("drain", "draining", True),
        ("drain", "SHUTDOWN", True),
        ("quarantine", "DRAINING", False),
        ("quarantine", "QUARANTINED", True),
        ("release", "QUARANTINED", False),
        ("release", "IDLE", True),
        ("release", None, False),
    ],
)
def test_command_took_effect(command: str, lifecycle: str | None, done: bool) -> None:
    assert command_took_effect(command, lifecycle) is done
