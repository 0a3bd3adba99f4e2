"""Every move of the lifecycle table, made by a real `Bot` against the fake coordinator.

The tests iterate over `TRANSITIONS`: each (source, target) needs a scenario below that
brings the bot to `source` and makes it move to `target`, so a transition added to the
table without a scenario fails here. Time is a `ScaledClock` (a second in 10 ms); every
scenario runs in milliseconds. The table's shape (every state reachable, every state
left as designed, a move outside it raises) is checked on the data itself.
"""

from __future__ import annotations

import errno
import re
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from bot.agent.lifecycle import FINAL_STATES, ONLINE_STATES, TRANSITIONS, Lifecycle, transitions
from bot.agent.quarantine import Quarantine
from bot.errors import AuthError, InvalidTransition, NetworkError, OverloadedError
from bot.machine import EXIT_SAFE_HALT
from bot.reports.outbox import Outbox
from bot.state import BotState
from bot.testing import FailingDisk
from botfleet.protocol import messages as m
from tests.unit.bot.rig import Rig

S = BotState
Scenario = Callable[[Rig], Awaitable[None]]
PAUSED = m.Assignment(max_concurrency=2, paused=True)
ONE_SLOT = m.Assignment(max_concurrency=1)


# ---------------------------------------------------------------- the table as data


def test_every_state_is_in_the_table() -> None:
    assert set(TRANSITIONS) == set(BotState)


def test_every_state_is_reachable_from_bootstrap() -> None:
    seen, todo = {S.BOOTSTRAP}, deque([S.BOOTSTRAP])
    while todo:
        for target in TRANSITIONS[todo.popleft()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    assert seen == set(BotState)


def test_every_state_but_the_final_ones_is_left_and_all_roads_end() -> None:
    for state, targets in TRANSITIONS.items():
        assert bool(targets) is (state not in FINAL_STATES), state
        assert state not in targets, f"{state} moves to itself"
    # From every state a final state can be reached: nothing is a trap.
    for state in BotState:
        seen, todo = {state}, deque([state])
        while todo:
            for target in TRANSITIONS[todo.popleft()]:
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        assert seen & FINAL_STATES, state


def test_every_non_final_state_can_drain_or_halt() -> None:
    for state in set(BotState) - FINAL_STATES - {S.BOOTSTRAP}:
        assert S.SAFE_HALT in TRANSITIONS[state], state
    for state in ONLINE_STATES:
        assert {S.DRAINING, S.REGISTER} <= TRANSITIONS[state], state


@pytest.mark.parametrize(
    ("source", "target"),
    [(a, b) for a in BotState for b in BotState if a != b and b not in TRANSITIONS[a]],
    ids=lambda state: state.name,
)
def test_a_move_not_in_the_table_raises(source: BotState, target: BotState) -> None:
    lifecycle = Lifecycle(initial=source)
    with pytest.raises(InvalidTransition, match=f"no move from {source.name} to {target.name}"):
        lifecycle.move(target)
    assert lifecycle.state is source and lifecycle.history == [source]


# ---------------------------------------------------------------- scenarios: how to get there


async def idle(rig: Rig, **options: object) -> None:
    rig.start(**options)  # type: ignore[arg-type]
    await rig.reach(S.IDLE)


async def idle_paused(rig: Rig, **options: object) -> None:
    """IDLE, and staying there: the coordinator paused the bot."""
    await idle(rig, assignment=PAUSED, **options)


async def claiming(rig: Rig) -> None:
    await idle(rig)
    await rig.claim_held()
    await rig.reach(S.CLAIM)


async def processing(rig: Rig, **options: object) -> None:
    await idle(rig, **options)
    await rig.slow_job()
    await rig.reach(S.PROCESS)


async def reporting(rig: Rig, *, paused: bool = True) -> None:
    """A report held on its way, no job running; paused: no claim either."""
    await idle(rig)
    if paused:
        rig.gate("complete")
        await rig.slow_job()
        await rig.pause()
        rig.release_jobs()
        await rig.until("a report held", lambda: rig.fake.count("complete") >= 1)
        await rig.reach(S.REPORT)
    else:
        await rig.report_held()


async def backing_off(rig: Rig) -> None:
    await idle(rig)
    await rig.claims_back_off()


async def degraded(rig: Rig, **options: object) -> None:
    await idle_paused(rig, **options)
    rig.cut()
    await rig.reach(S.DEGRADED_NET)


async def quarantined(rig: Rig) -> None:
    await idle(rig)
    rig.command("quarantine")
    await rig.reach(S.QUARANTINED)


async def draining(rig: Rig) -> None:
    await processing(rig)
    rig.stop()
    await rig.reach(S.DRAINING)


async def renewal_held(rig: Rig) -> None:
    """The coordinator forgot the bot; its registration again is held."""
    rig.gate("register")
    rig.forget_bot()
    await rig.until("registering again", lambda: rig.fake.count("register") >= 2)
    await rig.reach(S.REGISTER)


async def renewed(rig: Rig) -> None:
    """The coordinator forgot the bot: it registers again and syncs."""
    registrations = rig.fake.count("register")
    rig.forget_bot()
    await rig.until("registered again", lambda: rig.fake.count("register") > registrations)
    await rig.moved(S.REGISTER, S.SYNC)


# ---------------------------------------------------------------- scenarios: each move


async def bootstrap_to_register(rig: Rig) -> None:
    await idle(rig)


async def bootstrap_to_shutdown(rig: Rig) -> None:
    bot = rig.start()
    rig.stop()  # before it ever registers
    assert await rig.exit_code() == 0 and bot.state is S.SHUTDOWN


async def bootstrap_to_safe_halt(rig: Rig) -> None:
    rig.state_dir.parent.mkdir(parents=True, exist_ok=True)
    rig.state_dir.write_text("a file where the state folder should be")
    rig.start()
    assert await rig.exit_code() == EXIT_SAFE_HALT


async def register_to_backoff(rig: Rig) -> None:
    rig.fake.fail_next("register", NetworkError("refused"))
    await idle(rig)


async def register_to_safe_halt(rig: Rig) -> None:
    rig.fake.fail_next("register", AuthError(401, "bad enrollment token"))
    rig.start()
    assert await rig.exit_code() == EXIT_SAFE_HALT


async def register_to_draining(rig: Rig) -> None:
    await processing(rig)
    await renewal_held(rig)
    rig.stop()


async def backoff_to_register(rig: Rig) -> None:
    rig.fake.fail_next("register", OverloadedError(503, "starting up"))
    await idle(rig)


async def backoff_to_shutdown(rig: Rig) -> None:
    rig.fake.fail_next("register", *(NetworkError("refused") for _ in range(1000)))
    rig.start()
    await rig.reach(S.BACKOFF)
    rig.stop()
    assert await rig.exit_code() == 0


async def backoff_to_idle(rig: Rig) -> None:
    await idle(rig)
    await rig.claims_back_off(retry_after_s=1.0)


async def backoff_to_process(rig: Rig) -> None:
    await processing(rig)  # one slot of two busy: claims go on
    await rig.claims_back_off(retry_after_s=1.0)


async def backoff_to_report(rig: Rig) -> None:
    await reporting(rig, paused=False)
    await rig.claims_back_off(retry_after_s=1.0)


async def backoff_to_quarantined(rig: Rig) -> None:
    await backing_off(rig)
    rig.command("quarantine")


async def backoff_to_degraded_net(rig: Rig) -> None:
    await backing_off(rig)
    rig.cut()


async def backoff_to_draining(rig: Rig) -> None:
    await backing_off(rig)
    rig.stop()


async def backoff_to_safe_halt(rig: Rig) -> None:
    await backing_off(rig)
    rig.break_outbox()


async def sync_to_idle(rig: Rig) -> None:
    await idle(rig)


async def sync_to_claim(rig: Rig) -> None:
    await claiming(rig)
    await renewed(rig)


async def sync_to_process(rig: Rig) -> None:
    await processing(rig)
    await renewed(rig)


async def sync_to_report(rig: Rig) -> None:
    await reporting(rig)
    await renewed(rig)


async def sync_to_backoff(rig: Rig) -> None:
    await backing_off(rig)
    await renewed(rig)


async def sync_to_quarantined(rig: Rig) -> None:
    rig.state_dir.mkdir(parents=True)
    Quarantine(rig.state_dir, crash_loop_limit=0).enter("left by a previous run")
    rig.start()


async def sync_to_degraded_net(rig: Rig) -> None:
    # One failure opens the circuit here; the outbox flush at SYNC is that failure.
    await degraded(rig, circuit_threshold=1, circuit_window_s=0.0)
    with Outbox(rig.state_dir) as outbox:
        outbox.append([m.ReportItem(job_id="job_old", action="complete", result={})])
    rig.running_bot.outbox.open()  # reload: the bot sees the report kept
    rig.fake.fail_next("complete", NetworkError("cut again"))
    rig.mend()
    await rig.moved(S.DEGRADED_NET, S.SYNC)


async def sync_to_draining(rig: Rig) -> None:
    await processing(rig)
    rig.running_bot.outbox.append([m.ReportItem(job_id="job_old", action="complete", result={})])
    rig.gate("complete")  # the flush at SYNC is held
    await renewed(rig)
    await rig.reach(S.SYNC)
    rig.stop()


async def sync_to_safe_halt(rig: Rig) -> None:
    with Outbox(rig.state_dir) as outbox:
        outbox.append([m.ReportItem(job_id="job_old", action="complete", result={})])
    disk = FailingDisk()
    rig.gate("register")
    rig.start(disk=disk)
    await rig.until("registering", lambda: rig.fake.count("register") == 1)
    disk.rewrite_errno = errno.EROFS  # the flush at SYNC cannot rewrite the outbox
    rig.open("register")
    assert await rig.exit_code() == EXIT_SAFE_HALT


async def idle_to_claim(rig: Rig) -> None:
    await idle(rig)


async def idle_to_backoff(rig: Rig) -> None:
    await backing_off(rig)


async def idle_to_degraded_net(rig: Rig) -> None:
    await degraded(rig)


async def idle_to_quarantined(rig: Rig) -> None:
    # Paused, so the command cannot find the bot between IDLE and CLAIM instead.
    await idle_paused(rig)
    rig.command("quarantine")
    await rig.reach(S.QUARANTINED)


async def idle_to_register(rig: Rig) -> None:
    await idle_paused(rig)
    rig.forget_bot()


async def idle_to_draining(rig: Rig) -> None:
    await idle_paused(rig)
    rig.stop()


async def idle_to_safe_halt(rig: Rig) -> None:
    await idle_paused(rig)
    rig.break_outbox()


async def claim_to_idle(rig: Rig) -> None:
    await claiming(rig)
    rig.open("claim")


async def claim_to_process(rig: Rig) -> None:
    await claiming(rig)
    rig.fake.add_job("slow")
    rig.open("claim")


async def claim_to_degraded_net(rig: Rig) -> None:
    await claiming(rig)
    rig.cut()


async def claim_to_quarantined(rig: Rig) -> None:
    await claiming(rig)
    rig.command("quarantine")
    await rig.reach(S.QUARANTINED)
    # The claim held open was given up: no work comes through it.
    await rig.until(
        "the claim given up",
        lambda: (
            rig.running_bot.scheduler is not None
            and (rig.running_bot.scheduler.activity() is S.IDLE)
        ),
    )


async def claim_to_register(rig: Rig) -> None:
    await claiming(rig)
    rig.forget_bot()


async def claim_to_draining(rig: Rig) -> None:
    await claiming(rig)
    rig.stop()


async def claim_to_safe_halt(rig: Rig) -> None:
    await claiming(rig)
    rig.break_outbox()


async def process_to_report(rig: Rig) -> None:
    await processing(rig)
    rig.gate("complete")
    rig.release_jobs()


async def process_to_backoff(rig: Rig) -> None:
    await processing(rig)
    await rig.claims_back_off()


async def process_to_degraded_net(rig: Rig) -> None:
    await processing(rig, assignment=ONE_SLOT)  # the slot is full: no claims
    rig.cut()


async def process_to_quarantined(rig: Rig) -> None:
    # A crash loop: two crashes in a row quarantine this bot; the second job is still running.
    await processing(rig, crash_loop_limit=1)
    rig.fake.add_job("crash")


async def process_to_register(rig: Rig) -> None:
    await processing(rig)
    rig.forget_bot()


async def process_to_draining(rig: Rig) -> None:
    await draining(rig)


async def process_to_safe_halt(rig: Rig) -> None:
    await processing(rig)
    rig.break_outbox()


async def report_to_idle(rig: Rig) -> None:
    await reporting(rig)
    rig.open("complete")


async def report_to_claim(rig: Rig) -> None:
    await reporting(rig, paused=False)
    await rig.claim_held()
    rig.open("complete")


async def report_to_process(rig: Rig) -> None:
    await reporting(rig, paused=False)
    await rig.claim_held()
    rig.fake.add_job("slow")
    rig.open("claim")


async def report_to_backoff(rig: Rig) -> None:
    await reporting(rig, paused=False)
    await rig.claims_back_off()


async def report_to_degraded_net(rig: Rig) -> None:
    await reporting(rig)
    rig.cut()


async def report_to_quarantined(rig: Rig) -> None:
    await reporting(rig)
    rig.command("quarantine")


async def report_to_register(rig: Rig) -> None:
    await reporting(rig)
    rig.forget_bot()


async def report_to_draining(rig: Rig) -> None:
    await reporting(rig)
    rig.stop()


async def report_to_safe_halt(rig: Rig) -> None:
    await reporting(rig)
    rig.break_outbox()


async def degraded_net_to_sync(rig: Rig) -> None:
    await degraded(rig)
    rig.mend()


async def degraded_net_to_register(rig: Rig) -> None:
    await degraded(rig)
    rig.forget_bot()  # the outage outlasted the bot lease: the coordinator forgot it
    rig.mend()


async def degraded_net_to_draining(rig: Rig) -> None:
    await degraded(rig)
    rig.stop()


async def degraded_net_to_safe_halt(rig: Rig) -> None:
    await degraded(rig)
    rig.break_outbox()


async def quarantined_to_idle(rig: Rig) -> None:
    await quarantined(rig)
    rig.command("release")


async def quarantined_to_process(rig: Rig) -> None:
    await processing(rig)
    rig.command("quarantine")
    await rig.reach(S.QUARANTINED)
    rig.command("release")


async def quarantined_to_report(rig: Rig) -> None:
    await reporting(rig)
    rig.command("quarantine")
    await rig.reach(S.QUARANTINED)
    rig.command("release")


async def quarantined_to_backoff(rig: Rig) -> None:
    await backing_off(rig)
    rig.command("quarantine")
    await rig.reach(S.QUARANTINED)
    rig.command("release")


async def quarantined_to_degraded_net(rig: Rig) -> None:
    await quarantined(rig)
    rig.cut()


async def quarantined_to_register(rig: Rig) -> None:
    await quarantined(rig)
    rig.forget_bot()


async def quarantined_to_draining(rig: Rig) -> None:
    await quarantined(rig)
    rig.stop()


async def quarantined_to_safe_halt(rig: Rig) -> None:
    await quarantined(rig)
    rig.break_outbox()


async def draining_to_shutdown(rig: Rig) -> None:
    await draining(rig)
    rig.release_jobs()
    assert await rig.exit_code() == 0


async def draining_to_safe_halt(rig: Rig) -> None:
    await draining(rig)
    rig.break_outbox()
    await rig.until("the halt noticed", lambda: rig.running_bot.stops.unsafe is not None)
    rig.release_jobs()
    assert await rig.exit_code() == EXIT_SAFE_HALT


SCENARIOS: dict[tuple[BotState, BotState], Scenario] = {
    (S.BOOTSTRAP, S.REGISTER): bootstrap_to_register,
    (S.BOOTSTRAP, S.SHUTDOWN): bootstrap_to_shutdown,
    (S.BOOTSTRAP, S.SAFE_HALT): bootstrap_to_safe_halt,
    (S.REGISTER, S.SYNC): bootstrap_to_register,
    (S.REGISTER, S.BACKOFF): register_to_backoff,
    (S.REGISTER, S.DRAINING): register_to_draining,
    (S.REGISTER, S.SAFE_HALT): register_to_safe_halt,
    (S.BACKOFF, S.REGISTER): backoff_to_register,
    (S.BACKOFF, S.IDLE): backoff_to_idle,
    (S.BACKOFF, S.PROCESS): backoff_to_process,
    (S.BACKOFF, S.REPORT): backoff_to_report,
    (S.BACKOFF, S.QUARANTINED): backoff_to_quarantined,
    (S.BACKOFF, S.DEGRADED_NET): backoff_to_degraded_net,
    (S.BACKOFF, S.DRAINING): backoff_to_draining,
    (S.BACKOFF, S.SHUTDOWN): backoff_to_shutdown,
    (S.BACKOFF, S.SAFE_HALT): backoff_to_safe_halt,
    (S.SYNC, S.IDLE): sync_to_idle,
    (S.SYNC, S.CLAIM): sync_to_claim,
    (S.SYNC, S.PROCESS): sync_to_process,
    (S.SYNC, S.REPORT): sync_to_report,
    (S.SYNC, S.BACKOFF): sync_to_backoff,
    (S.SYNC, S.QUARANTINED): sync_to_quarantined,
    (S.SYNC, S.DEGRADED_NET): sync_to_degraded_net,
    (S.SYNC, S.DRAINING): sync_to_draining,
    (S.SYNC, S.SAFE_HALT): sync_to_safe_halt,
    (S.IDLE, S.CLAIM): idle_to_claim,
    (S.IDLE, S.BACKOFF): idle_to_backoff,
    (S.IDLE, S.DEGRADED_NET): idle_to_degraded_net,
    (S.IDLE, S.QUARANTINED): idle_to_quarantined,
    (S.IDLE, S.REGISTER): idle_to_register,
    (S.IDLE, S.DRAINING): idle_to_draining,
    (S.IDLE, S.SAFE_HALT): idle_to_safe_halt,
    (S.CLAIM, S.IDLE): claim_to_idle,
    (S.CLAIM, S.PROCESS): claim_to_process,
    (S.CLAIM, S.DEGRADED_NET): claim_to_degraded_net,
    (S.CLAIM, S.QUARANTINED): claim_to_quarantined,
    (S.CLAIM, S.REGISTER): claim_to_register,
    (S.CLAIM, S.DRAINING): claim_to_draining,
    (S.CLAIM, S.SAFE_HALT): claim_to_safe_halt,
    (S.PROCESS, S.REPORT): process_to_report,
    (S.PROCESS, S.BACKOFF): process_to_backoff,
    (S.PROCESS, S.DEGRADED_NET): process_to_degraded_net,
    (S.PROCESS, S.QUARANTINED): process_to_quarantined,
    (S.PROCESS, S.REGISTER): process_to_register,
    (S.PROCESS, S.DRAINING): process_to_draining,
    (S.PROCESS, S.SAFE_HALT): process_to_safe_halt,
    (S.REPORT, S.IDLE): report_to_idle,
    (S.REPORT, S.CLAIM): report_to_claim,
    (S.REPORT, S.PROCESS): report_to_process,
    (S.REPORT, S.BACKOFF): report_to_backoff,
    (S.REPORT, S.DEGRADED_NET): report_to_degraded_net,
    (S.REPORT, S.QUARANTINED): report_to_quarantined,
    (S.REPORT, S.REGISTER): report_to_register,
    (S.REPORT, S.DRAINING): report_to_draining,
    (S.REPORT, S.SAFE_HALT): report_to_safe_halt,
    (S.DEGRADED_NET, S.SYNC): degraded_net_to_sync,
    (S.DEGRADED_NET, S.REGISTER): degraded_net_to_register,
    (S.DEGRADED_NET, S.DRAINING): degraded_net_to_draining,
    (S.DEGRADED_NET, S.SAFE_HALT): degraded_net_to_safe_halt,
    (S.QUARANTINED, S.IDLE): quarantined_to_idle,
    (S.QUARANTINED, S.PROCESS): quarantined_to_process,
    (S.QUARANTINED, S.REPORT): quarantined_to_report,
    (S.QUARANTINED, S.BACKOFF): quarantined_to_backoff,
    (S.QUARANTINED, S.DEGRADED_NET): quarantined_to_degraded_net,
    (S.QUARANTINED, S.REGISTER): quarantined_to_register,
    (S.QUARANTINED, S.DRAINING): quarantined_to_draining,
    (S.QUARANTINED, S.SAFE_HALT): quarantined_to_safe_halt,
    (S.DRAINING, S.SHUTDOWN): draining_to_shutdown,
    (S.DRAINING, S.SAFE_HALT): draining_to_safe_halt,
}


def test_no_scenario_for_a_move_the_table_does_not_have() -> None:
    assert set(SCENARIOS) <= set(transitions())


@pytest.mark.parametrize(("source", "target"), transitions(), ids=lambda state: state.name)
async def test_transition(source: BotState, target: BotState, state_dir: Path) -> None:
    scenario = SCENARIOS.get((source, target))
    assert scenario is not None, f"no scenario makes the move {source.name} -> {target.name}"
    rig = Rig(state_dir)
    try:
        await scenario(rig)
        await rig.moved(source, target)
    finally:
        await rig.finish()
    assert rig.running_bot.lifecycle.final


def test_the_documented_table_is_the_table() -> None:
    docs = Path(__file__).resolve().parents[4] / "docs" / "bot.md"
    rows = re.findall(r"^\| `(\w+)` \| `(\w+)` \|", docs.read_text(), flags=re.MULTILINE)
    documented = [(BotState[source], BotState[target]) for source, target in rows]
    assert sorted(documented, key=str) == sorted(transitions(), key=str)
    assert len(documented) == len(set(documented))
