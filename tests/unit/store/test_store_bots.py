"""The bot verbs (bots modules), on every backend: registration, heartbeats,
assignment, commands and the quarantine."""

from __future__ import annotations

from datetime import timedelta

import pytest

from botfleet.clock import FakeClock
from coordinator.store.base import BotUpdate, ClaimInput, HeartbeatInput, Store
from coordinator.store.rules import claims_withheld
from tests.unit.store.support import (
    BOT_LEASE_TTL_S,
    JOB_LEASE_TTL_S,
    claim_ids,
    complete,
    heartbeat,
    register,
    registration,
    submit,
)


async def test_register_creates_a_bot(store: Store, clock: FakeClock) -> None:
    outcome = await store.register_bot(registration(clock, max_concurrency=4))
    bot = outcome.bot
    assert outcome.created and outcome.released_job_ids == ()
    assert bot.id.startswith("bot_")
    assert bot.online and bot.assignment.paused is False
    assert bot.assignment.operations == ("sum", "subtract")
    assert bot.assignment.max_concurrency == 4
    assert bot.capabilities == ("sum", "subtract")
    assert bot.registered_at == clock.now()
    assert bot.lease_until == clock.now() + timedelta(seconds=BOT_LEASE_TTL_S)
    assert bot.resources == {"cpu_cores": 2, "mem_mb": 512}
    assert bot.meta["hostname"] == "host-a"
    assert await store.get_bot(bot.id) == bot


async def test_max_concurrency_defaults(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock, default_max_concurrency=7)
    assert bot.assignment.max_concurrency == 7


async def test_same_instance_registering_again_is_the_same_bot(
    store: Store, clock: FakeClock
) -> None:
    first = await store.register_bot(registration(clock))
    job_id = await submit(store, clock)
    await claim_ids(store, first.bot.id)
    clock.advance(5)
    again = await store.register_bot(registration(clock))
    assert not again.created
    assert again.bot.id == first.bot.id
    assert again.released_job_ids == ()
    assert again.bot.running == (job_id,)
    assert again.bot.lease_until == clock.now() + timedelta(seconds=BOT_LEASE_TTL_S)


async def test_new_instance_releases_the_old_instance_jobs_at_once(
    store: Store, clock: FakeClock
) -> None:
    old = await register(store, clock, instance_id="old")
    job_id = await submit(store, clock)
    spent_id = await submit(store, clock, max_attempts=1)
    await claim_ids(store, old.id)
    clock.advance(1)
    outcome = await store.register_bot(registration(clock, instance_id="new"))
    assert outcome.bot.id == old.id and not outcome.created
    assert sorted(outcome.released_job_ids) == sorted([job_id, spent_id])
    assert outcome.bot.instance_id == "new" and outcome.bot.running == ()
    requeued = await store.get_job(job_id)
    assert requeued is not None and (requeued.state, requeued.lease_until) == ("queued", None)
    spent = await store.get_job(spent_id)
    assert spent is not None
    assert (spent.state, spent.error) == ("failed", "bot instance replaced")
    attempts = await store.list_attempts(job_id)
    assert [(a.outcome, a.ended_at) for a in attempts] == [("released", clock.now())]
    assert await claim_ids(store, old.id) == [job_id]


async def test_list_bots_and_running_jobs(store: Store, clock: FakeClock) -> None:
    one = await register(store, clock, bot_key="host-a/one", instance_id="i-one")
    clock.advance(1)
    two = await register(store, clock, bot_key="host-b/two", instance_id="i-two")
    job_id = await submit(store, clock)
    await claim_ids(store, two.id)
    bots = await store.list_bots()
    assert [bot.id for bot in bots] == [one.id, two.id]
    assert [bot.running for bot in bots] == [(), (job_id,)]
    assert await store.get_bot("bot_missing") is None


async def test_heartbeat_renews_the_bot_and_extends_its_jobs(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    short = await submit(store, clock)
    long = await submit(store, clock, timeout_s=300.0)
    await claim_ids(store, bot.id)
    clock.advance(20)
    outcome = await heartbeat(store, bot, [short, long, "job_missing"], lifecycle="BUSY")
    assert outcome is not None
    assert outcome.extended == {
        short: clock.now() + timedelta(seconds=JOB_LEASE_TTL_S),
        long: clock.now() + timedelta(seconds=300),
    }
    assert outcome.cancel == () and outcome.command is None
    assert outcome.bot.lease_until == clock.now() + timedelta(seconds=BOT_LEASE_TTL_S)
    assert outcome.bot.last_heartbeat == clock.now()
    assert outcome.bot.lifecycle == "BUSY"
    assert outcome.bot.metrics == {"cpu": 0.5, "mem_mb": 100}
    job = await store.get_job(short)
    assert job is not None and job.lease_until == outcome.extended[short]
    # The history shows the extended lease too.
    (attempt,) = await store.list_attempts(short)
    assert attempt.lease_until == outcome.extended[short]
    # Extended past the first deadline: the reaper leaves it alone.
    clock.advance(JOB_LEASE_TTL_S - 1)
    assert (await store.expire_leases()).requeued == ()


async def test_heartbeat_does_not_extend_jobs_it_no_longer_holds(
    store: Store, clock: FakeClock
) -> None:
    one = await register(store, clock, bot_key="host-a/one", instance_id="i-one")
    two = await register(store, clock, bot_key="host-b/two", instance_id="i-two")
    done = await submit(store, clock)
    moved = await submit(store, clock)
    await claim_ids(store, one.id)
    await store.report(one.id, [complete(done)])
    clock.advance(JOB_LEASE_TTL_S + 1)
    await heartbeat(store, two)  # keep the other bot alive
    await store.expire_leases()
    assert await claim_ids(store, two.id) == [moved]
    outcome = await heartbeat(store, one, [done, moved])
    assert outcome is not None and outcome.extended == {}
    job = await store.get_job(moved)
    assert job is not None and job.bot_id == two.id


async def test_heartbeat_tells_about_cancelled_jobs(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    kept = await submit(store, clock)
    dropped = await submit(store, clock)
    await claim_ids(store, bot.id)
    await store.cancel_job(dropped)
    outcome = await heartbeat(store, bot, [kept, dropped])
    assert outcome is not None
    assert outcome.cancel == (dropped,)
    assert set(outcome.extended) == {kept}


async def test_heartbeat_from_unknown_offline_or_replaced_bot_is_none(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    assert (
        await store.heartbeat(
            HeartbeatInput("bot_missing", "x", [], None, {}, BOT_LEASE_TTL_S, JOB_LEASE_TTL_S)
        )
        is None
    )
    await register(store, clock, instance_id="instance-2")
    assert await heartbeat(store, bot) is None  # the old instance is fenced off
    current = await store.get_bot(bot.id)
    assert current is not None and await heartbeat(store, current) is not None
    await store.deregister_bot(current.id, current.instance_id)
    assert await heartbeat(store, current) is None


@pytest.mark.parametrize(
    ("command", "not_yet", "done"),
    [
        ("drain", "BUSY", "DRAINING"),
        ("drain", "IDLE", "SHUTDOWN"),
        ("quarantine", "DRAINING", "QUARANTINED"),
    ],
)
async def test_pending_command_until_the_lifecycle_shows_it(
    store: Store, clock: FakeClock, command: str, not_yet: str, done: str
) -> None:
    bot = await register(store, clock)
    updated = await store.update_bot(bot.id, BotUpdate(command=command))
    assert updated is not None and updated.pending_command == command
    for _ in range(2):
        outcome = await heartbeat(store, bot, lifecycle=not_yet)
        assert outcome is not None and outcome.command == command
    outcome = await heartbeat(store, bot, lifecycle=done)
    assert outcome is not None and outcome.command is None
    assert outcome.bot.pending_command is None
    outcome = await heartbeat(store, bot, lifecycle=done)
    assert outcome is not None and outcome.command is None


async def test_release_command_lasts_while_quarantined(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    await store.update_bot(bot.id, BotUpdate(command="quarantine"))
    await heartbeat(store, bot, lifecycle="QUARANTINED")
    await store.update_bot(bot.id, BotUpdate(command="release"))
    outcome = await heartbeat(store, bot, lifecycle="QUARANTINED")
    assert outcome is not None and outcome.command == "release"
    outcome = await heartbeat(store, bot, lifecycle="IDLE")
    assert outcome is not None and outcome.command is None


async def test_update_bot(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    updated = await store.update_bot(bot.id, BotUpdate(max_concurrency=1))
    assert updated is not None
    assert updated.assignment.max_concurrency == 1
    assert updated.assignment.operations == bot.assignment.operations
    updated = await store.update_bot(bot.id, BotUpdate(operations=["sum"], paused=True))
    assert updated is not None
    assert updated.assignment == type(bot.assignment)(("sum",), 1, True)
    assert await store.update_bot("bot_missing", BotUpdate(paused=True)) is None


async def test_deregister_releases_jobs_and_goes_offline(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    await claim_ids(store, bot.id)
    assert await store.deregister_bot(bot.id, bot.instance_id) == (job_id,)
    gone = await store.get_bot(bot.id)
    assert gone is not None and not gone.online and gone.running == ()
    job = await store.get_job(job_id)
    assert job is not None and job.state == "queued"
    assert await store.deregister_bot("bot_missing", "x") is None
    # Registering again brings it back online.
    back = await register(store, clock)
    assert back.id == bot.id and back.online


@pytest.mark.parametrize(
    ("quarantined", "lifecycle", "withheld"),
    [
        (False, None, False),
        (False, "IDLE", False),
        (False, "QUARANTINED", True),
        (False, "quarantined", True),
        (True, None, True),
        (True, "IDLE", True),
    ],
)
def test_claims_withheld(quarantined: bool, lifecycle: str | None, withheld: bool) -> None:
    assert claims_withheld(quarantined, lifecycle) is withheld


async def test_pending_quarantine_hands_out_nothing_until_release(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    updated = await store.update_bot(bot.id, BotUpdate(command="quarantine"))
    assert updated is not None and updated.quarantined
    assert await store.claim_jobs(ClaimInput(bot.id, ["sum"], 10, 30.0)) == []  # empty, not None
    job = await store.get_job(job_id)
    assert job is not None and (job.state, job.attempt) == ("queued", 0)
    released = await store.update_bot(bot.id, BotUpdate(command="release"))
    assert released is not None and not released.quarantined
    assert await claim_ids(store, bot.id) == [job_id]


async def test_delivered_quarantine_holds_until_release(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    await store.update_bot(bot.id, BotUpdate(command="quarantine"))
    outcome = await heartbeat(store, bot, lifecycle="QUARANTINED")
    assert outcome is not None and outcome.bot.pending_command is None  # delivered
    assert await claim_ids(store, bot.id) == []
    # The bot claims to be idle again, but the operator has not released it.
    await heartbeat(store, bot, lifecycle="IDLE")
    assert await claim_ids(store, bot.id) == []
    await store.update_bot(bot.id, BotUpdate(command="release"))
    assert await claim_ids(store, bot.id) == [job_id]


async def test_release_waits_for_the_bot_to_leave_quarantine(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    await store.update_bot(bot.id, BotUpdate(command="quarantine"))
    await heartbeat(store, bot, lifecycle="QUARANTINED")
    await store.update_bot(bot.id, BotUpdate(command="release"))
    assert await claim_ids(store, bot.id) == []  # its last heartbeat still said QUARANTINED
    await heartbeat(store, bot, lifecycle="IDLE")
    assert await claim_ids(store, bot.id) == [job_id]


async def test_a_bot_that_reports_quarantined_gets_nothing(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    await heartbeat(store, bot, lifecycle="quarantined")  # its own crash-loop quarantine
    assert await claim_ids(store, bot.id) == []
    await heartbeat(store, bot)  # no state: the last reported one stands
    assert await claim_ids(store, bot.id) == []
    await heartbeat(store, bot, lifecycle="idle")
    assert await claim_ids(store, bot.id) == [job_id]


async def test_drain_keeps_the_quarantine(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    await submit(store, clock)
    await store.update_bot(bot.id, BotUpdate(command="quarantine"))
    drained = await store.update_bot(bot.id, BotUpdate(command="drain"))
    assert drained is not None and drained.quarantined and drained.pending_command == "drain"
    assert await claim_ids(store, bot.id) == []


async def test_quarantine_survives_a_new_instance(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock, instance_id="instance-1")
    job_id = await submit(store, clock)
    await store.update_bot(bot.id, BotUpdate(command="quarantine"))
    await heartbeat(store, bot, lifecycle="QUARANTINED")
    again = await register(store, clock, instance_id="instance-2")
    assert again.id == bot.id and again.quarantined and again.lifecycle is None
    assert await claim_ids(store, bot.id) == []
    await store.update_bot(bot.id, BotUpdate(command="release"))
    assert await claim_ids(store, bot.id) == [job_id]
    listed = {record.id: record for record in await store.list_bots()}
    assert not listed[bot.id].quarantined


async def test_quarantine_keeps_the_jobs_it_already_holds(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    job_id = await submit(store, clock)
    assert await claim_ids(store, bot.id) == [job_id]
    await store.update_bot(bot.id, BotUpdate(command="quarantine"))
    outcome = await heartbeat(store, bot, running=[job_id], lifecycle="QUARANTINED")
    assert outcome is not None and job_id in outcome.extended
    job = await store.get_job(job_id)
    assert job is not None and (job.state, job.bot_id) == ("running", bot.id)
