"""The concurrency limit: resizable while jobs run, never below what runs."""

from __future__ import annotations

import pytest

from bot.work.slots import Slots


async def test_slots_resize_keeps_the_accounting() -> None:
    slots = Slots(2)
    slots.take()
    slots.take()
    assert (slots.free, slots.in_use) == (0, 2)
    slots.resize(1)  # shrink below what runs: nothing is stopped, nothing is free
    assert (slots.free, slots.in_use, slots.capacity) == (0, 2, 1)
    slots.release()
    assert slots.free == 0
    slots.release()
    assert slots.free == 1
    slots.changed.clear()
    slots.resize(5)
    assert slots.changed.is_set() and slots.free == 5
    slots.changed.clear()
    slots.resize(5)
    assert not slots.changed.is_set()
    slots.take()  # take never waits, even over capacity
    slots.resize(0)
    assert slots.free == 0 and slots.in_use == 1


def test_slots_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        Slots(-1)
    with pytest.raises(ValueError):
        Slots(1).resize(-1)
    with pytest.raises(RuntimeError, match="without a matching"):
        Slots(1).release()
