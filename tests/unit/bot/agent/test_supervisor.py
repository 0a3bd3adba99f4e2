"""Named side tasks: a crash is reported, a name runs once."""

from __future__ import annotations

import asyncio

import pytest

from bot.agent.supervisor import Supervisor


async def test_supervisor_reports_a_crash_and_refuses_duplicates() -> None:
    supervisor = Supervisor()

    async def crash() -> None:
        raise RuntimeError("bug")

    async def fine() -> None:
        return None

    async def forever() -> None:
        await asyncio.Event().wait()

    supervisor.start("fine", fine())
    supervisor.start("forever", forever())
    with pytest.raises(RuntimeError, match="already runs"):
        supervisor.start("forever", forever())
    supervisor.start("crash", crash())
    await asyncio.wait_for(supervisor.failed.wait(), 30)
    assert supervisor.failure is not None and supervisor.failure[0] == "crash"
    assert "forever" in supervisor and supervisor.names() == ["forever"]
    assert await supervisor.join("fine") is True
    assert await supervisor.join("missing") is True
    hard = asyncio.Event()
    hard.set()
    assert await supervisor.join("forever", hard) is False
    await supervisor.cancel_all()
    assert supervisor.names() == []
