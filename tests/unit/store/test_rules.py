"""The rules shared by every store backend, decided without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from coordinator.store.base import BotUpdate, ClaimInput, Registration, ReportInput, ReportOutcome
from coordinator.store.records import AssignmentRecord
from coordinator.store.rules import (
    Claimant,
    Effect,
    JobSnapshot,
    OperatorChoices,
    after_heartbeat,
    answers_repeat,
    assignment_of,
    check_bot_update,
    choices_after,
    claimable_operations,
    command_took_effect,
    decide_report,
    holds_lease,
    max_concurrency_of,
    refusal,
)

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


def test_a_running_job_has_its_latest_attempt_live() -> None:
    assert job("running", attempt=4).live_attempt == 4
    assert job("queued", attempt=4).live_attempt is None
    assert job("succeeded", attempt=4).live_attempt is None


def test_only_the_holder_of_the_live_attempt_holds_the_lease() -> None:
    assert holds_lease(job(attempt=2), BOT, 2)
    assert not holds_lease(job(attempt=2), BOT, 1)
    assert not holds_lease(job(attempt=2), "bot_b", 2)
    assert not holds_lease(job("queued", attempt=2), BOT, 2)


def test_refusal_says_why() -> None:
    assert refusal(found=False, handed=False) is ReportOutcome.NOT_FOUND
    assert refusal(found=True, handed=False) is ReportOutcome.FORBIDDEN
    assert refusal(found=True, handed=True) is ReportOutcome.CONFLICT


def claimant(**kw: object) -> Claimant:
    fields: dict[str, object] = {
        "operations": {"sum", "resize"},
        "paused": False,
        "quarantined": False,
        "lifecycle": None,
    }
    fields.update(kw)
    return Claimant(**fields)  # type: ignore[arg-type]


def test_a_claim_takes_the_operations_asked_that_the_assignment_holds_in_order() -> None:
    claim = ClaimInput(BOT, ["resize", "x", "sum", "resize"], 5, 30.0)
    assert claimable_operations(claimant(), claim) == ["resize", "sum"]


@pytest.mark.parametrize(
    "bot",
    [
        claimant(paused=True),
        claimant(quarantined=True),
        claimant(lifecycle="quarantined"),
        claimant(operations=set()),
    ],
)
def test_a_claim_gets_nothing(bot: Claimant) -> None:
    assert claimable_operations(bot, ClaimInput(BOT, ["sum"], 5, 30.0)) == []


def test_a_claim_of_no_jobs_gets_nothing() -> None:
    assert claimable_operations(claimant(), ClaimInput(BOT, ["sum"], 0, 30.0)) == []


def registration_with(constraints: dict[str, object]) -> Registration:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return Registration(
        "key", "instance", "name", "1.0.0", ("sum",), {}, dict(constraints), {}, "hash",
        now + timedelta(hours=1), now + timedelta(minutes=2), default_max_concurrency=7,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("wanted", "granted"), [(3, 3), (0, 7), (-1, 7), (True, 7), ("4", 7), (None, 7)]
)
def test_max_concurrency_is_the_bots_own_positive_integer_or_the_default(
    wanted: object, granted: int
) -> None:
    constraints = {} if wanted is None else {"max_concurrency": wanted}
    assert max_concurrency_of(registration_with(constraints)) == granted


@pytest.mark.parametrize(
    ("update", "message"),
    [
        (BotUpdate(command="explode"), "unknown bot command"),
        (BotUpdate(max_concurrency=-1), "must not be negative"),
        (BotUpdate(follow_bot=frozenset({"colour"})), "unknown assignment field 'colour'"),
        (
            BotUpdate(operations=["sum"], follow_bot=frozenset({"operations"})),
            "operations is both given and handed back",
        ),
        (
            BotUpdate(max_concurrency=0, follow_bot=frozenset({"max_concurrency"})),
            "max_concurrency is both given",
        ),
    ],
)
def test_a_bot_update_no_bot_could_follow_is_refused(update: BotUpdate, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_bot_update(update)


def test_an_operators_choice_lasts_until_changed_or_handed_back() -> None:
    chosen = choices_after(OperatorChoices(), BotUpdate(max_concurrency=0, paused=True))
    assert chosen == OperatorChoices(None, 0, True)
    chosen = choices_after(chosen, BotUpdate(operations=["sum"], command="drain"))
    assert chosen == OperatorChoices(("sum",), 0, True)
    assert choices_after(chosen, BotUpdate()) == chosen
    handed = choices_after(chosen, BotUpdate(follow_bot=frozenset({"max_concurrency", "paused"})))
    assert handed == OperatorChoices(("sum",), None, False)
    assert choices_after(handed, BotUpdate(follow_bot=frozenset({"operations"}))) == (
        OperatorChoices()
    )


def test_the_assignment_takes_each_chosen_field_else_the_bots_own() -> None:
    own = (("sum", "resize"), 4)
    assert assignment_of(*own, OperatorChoices()) == AssignmentRecord(("sum", "resize"), 4)
    assert assignment_of(*own, OperatorChoices(max_concurrency=0)) == AssignmentRecord(
        ("sum", "resize"), 0
    )
    assert assignment_of(*own, OperatorChoices(("sum",), None, True)) == AssignmentRecord(
        ("sum",), 4, True
    )


def test_after_a_heartbeat_the_state_reported_or_kept_settles_the_command() -> None:
    assert after_heartbeat(None, "DRAINING", "drain") == ("DRAINING", None)
    assert after_heartbeat("BUSY", "DRAINING", "drain") == ("BUSY", "drain")
    assert after_heartbeat("QUARANTINED", None, None) == ("QUARANTINED", None)


@pytest.mark.parametrize(
    ("claim_id", "seen", "repeat"),
    [("c1", True, True), ("c1", False, False), (None, True, False), (None, False, False)],
)
def test_a_claim_is_a_repeat_once_its_id_handed_out_jobs(
    claim_id: str | None, seen: bool, repeat: bool
) -> None:
    claim = ClaimInput("bot_1", ["sum"], 5, 30.0, claim_id)
    assert answers_repeat(claim, seen) is repeat
