"""A quarantined bot gets no jobs from the store, on every backend: by the operator's
command (pending or delivered, until `release`) or by the lifecycle it last reported."""

from __future__ import annotations

import pytest

from botfleet.clock import FakeClock
from coordinator.store.base import BotUpdate, ClaimInput, Store
from coordinator.store.rules import claims_withheld
from tests.unit.store.support import claim_ids, heartbeat, register, submit


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
