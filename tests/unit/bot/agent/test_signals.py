"""SIGTERM/SIGINT routed as stop requests inside a block, the old handlers restored after."""

from __future__ import annotations

import asyncio
import os
import signal

from bot.agent.signals import stop_on_signals


async def test_signals_are_routed_and_restored() -> None:
    seen: list[str] = []
    got = asyncio.Event()

    def on_signal(name: str) -> None:
        seen.append(name)
        got.set()

    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals(on_signal, (signal.SIGTERM,)):
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(got.wait(), 30)
    assert seen == ["SIGTERM"]
    assert signal.getsignal(signal.SIGTERM) == before
