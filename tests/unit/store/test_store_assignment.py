"""A bot's assignment across registrations, on every backend: an operator's change lasts
until an operator changes it again, the rest follows the bot, and registration counts as
the first heartbeat."""

from __future__ import annotations

import pytest

from botfleet.clock import FakeClock
from coordinator.store.base import BotUpdate, Store
from tests.unit.store.support import heartbeat, register

# A token renewal registers the same instance again; a restart registers a new one.
INSTANCES = pytest.mark.parametrize("instance_id", ["instance-1", "instance-2"])


@INSTANCES
async def test_paused_survives_registration(
    store: Store, clock: FakeClock, instance_id: str
) -> None:
    bot = await register(store, clock)
    await store.update_bot(bot.id, BotUpdate(paused=True))
    again = await register(store, clock, instance_id=instance_id)
    assert again.assignment.paused


async def test_an_assignment_no_operator_changed_follows_the_registration(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock, max_concurrency=2)
    assert (bot.assignment.operations, bot.assignment.max_concurrency) == (("sum", "subtract"), 2)
    again = await register(store, clock, capabilities=("sum", "resize"), max_concurrency=3)
    assert again.assignment.operations == ("sum", "resize")
    assert again.assignment.max_concurrency == 3


@INSTANCES
async def test_an_operators_assignment_outlasts_registration(
    store: Store, clock: FakeClock, instance_id: str
) -> None:
    bot = await register(store, clock, max_concurrency=2)
    await store.update_bot(bot.id, BotUpdate(operations=["sum"], max_concurrency=1, paused=True))
    for _ in range(2):
        again = await register(
            store,
            clock,
            instance_id=instance_id,
            capabilities=("sum", "resize"),
            max_concurrency=3,
        )
        assert again.assignment == type(again.assignment)(("sum",), 1, True)
        assert again.capabilities == ("sum", "resize")
    assert await store.get_bot(bot.id) == again


@INSTANCES
async def test_each_field_an_operator_never_set_follows_the_bot(
    store: Store, clock: FakeClock, instance_id: str
) -> None:
    bot = await register(store, clock, max_concurrency=2)
    await store.update_bot(bot.id, BotUpdate(max_concurrency=6))
    again = await register(
        store, clock, instance_id=instance_id, capabilities=("sum", "resize"), max_concurrency=3
    )
    assert again.assignment == type(again.assignment)(("sum", "resize"), 6, False)
    await store.update_bot(bot.id, BotUpdate(operations=["resize"]))
    again = await register(store, clock, instance_id=instance_id, capabilities=("sum",))
    assert again.assignment.operations == ("resize",)
    assert again.assignment.max_concurrency == 6


async def test_a_field_handed_back_follows_the_bot_again(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock, max_concurrency=2)
    await store.update_bot(bot.id, BotUpdate(operations=["sum"], max_concurrency=1, paused=True))
    await register(store, clock, capabilities=("sum", "resize"), max_concurrency=3)

    handed = await store.update_bot(bot.id, BotUpdate(follow_bot=frozenset({"max_concurrency"})))
    assert handed is not None
    assert handed.assignment == type(handed.assignment)(("sum",), 3, True)
    again = await register(
        store, clock, instance_id="instance-2", capabilities=("sum", "resize"), max_concurrency=5
    )
    assert again.assignment == type(again.assignment)(("sum",), 5, True)

    everything = frozenset({"operations", "paused"})
    handed = await store.update_bot(bot.id, BotUpdate(follow_bot=everything))
    assert handed is not None
    assert handed.assignment == type(handed.assignment)(("sum", "resize"), 5, False)
    again = await register(store, clock, instance_id="instance-3", capabilities=("subtract",))
    assert again.assignment == type(again.assignment)(("subtract",), 10, False)


async def test_changing_a_field_again_replaces_the_operators_choice(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    await store.update_bot(bot.id, BotUpdate(max_concurrency=1))
    await store.update_bot(bot.id, BotUpdate(max_concurrency=4, command="drain"))
    again = await register(store, clock, instance_id="instance-2", max_concurrency=9)
    assert again.assignment.max_concurrency == 4
    assert again.pending_command == "drain"


async def test_a_field_both_given_and_handed_back_is_refused(
    store: Store, clock: FakeClock
) -> None:
    bot = await register(store, clock)
    update = BotUpdate(paused=True, follow_bot=frozenset({"paused"}))
    with pytest.raises(ValueError, match="both given and handed back"):
        await store.update_bot(bot.id, update)
    assert await store.update_bot("bot_missing", BotUpdate(follow_bot=frozenset())) is None


async def test_registration_counts_as_the_first_heartbeat(store: Store, clock: FakeClock) -> None:
    bot = await register(store, clock)
    assert bot.last_heartbeat == bot.registered_at == clock.now()
    assert (await store.list_bots())[0].last_heartbeat == clock.now()
    clock.advance(10)
    beat = await heartbeat(store, bot)
    assert beat is not None and beat.bot.last_heartbeat == clock.now()
    beat_at = clock.now()
    clock.advance(10)
    # Renewing the token is no heartbeat: the next one compares with the last real one.
    renewed = await register(store, clock)
    assert renewed.last_heartbeat == beat_at
    clock.advance(10)
    restarted = await register(store, clock, instance_id="instance-2")
    assert restarted.last_heartbeat == clock.now()
