"""A bot against the fake coordinator, with handles to put it in any lifecycle state.

Time is a `ScaledClock` (a second passes in 10 ms); the coordinator is the in-memory
`FakeCoordinator`, whose calls a scenario can hold (`gate`), fail (`fake.fail_next`)
or cut off (`cut`). A "slow" operation runs until `release_jobs()`; a "crash" one raises.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.errors import NotFoundError, OverloadedError
from bot.jobs import Registry, load_plugins
from bot.machine import Bot
from bot.reports.outbox import OUTBOX_FILE
from bot.settings import Settings
from bot.state import BotState, Job
from bot.system.disk import Disk
from bot.testing import FakeCoordinator, ScaledClock
from botfleet.protocol import messages as m
from tests.support.processes import wait_until_async

from .conftest import GENEROUS_S, HOST

S = BotState
Move = tuple[BotState, BotState]


@dataclass
class Rig:
    state_dir: Path
    fake: FakeCoordinator = field(default_factory=FakeCoordinator)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    moves: list[Move] = field(default_factory=list)
    bot: Bot | None = None
    task: asyncio.Task[int] | None = None

    # ------------------------------------------------------------ starting

    def registry(self) -> Registry:
        registry = load_plugins(Registry(), entry_points=())
        release = self.release

        async def slow(job: Job) -> dict[str, bool]:
            await release.wait()
            return {"done": True}

        async def crash(job: Job) -> dict[str, bool]:
            raise RuntimeError("handler bug")

        registry.register("slow", slow)
        registry.register("crash", crash)
        return registry

    def start(
        self,
        *,
        features: Iterable[str] = (),
        assignment: m.Assignment | None = None,
        disk: Disk | None = None,
        **settings: Any,
    ) -> Bot:
        self.fake.features = list(features)
        self.fake.assignment = assignment
        values: dict[str, Any] = {
            "state_dir": self.state_dir,
            "heartbeat_interval_s": 1.0,
            "min_backoff_ms": 100,
            "max_backoff_ms": 1000,
            "drain_grace_s": 1e6,
            "report_limit_s": 1e6,
            "claim_hedge_ms": 0,  # a claim late by 3 ms of real time is not the subject
        }
        values.update(settings)
        bot = Bot(
            Settings(**values),
            api=self.fake,
            clock=ScaledClock(),
            rng=random.Random(5),
            host=HOST,
            registry=self.registry(),
            disk=disk,
        )
        bot.lifecycle.subscribe(lambda source, target, reason: self.moves.append((source, target)))
        self.bot = bot
        self.task = asyncio.create_task(bot.run())
        return bot

    @property
    def running_bot(self) -> Bot:
        assert self.bot is not None, "start() first"
        return self.bot

    # ------------------------------------------------------------ waiting

    async def until(self, what: str, condition: Callable[[], bool]) -> None:
        async def check() -> bool:
            if self.task is not None and self.task.done() and not condition():
                raise AssertionError(f"the bot ended ({self.task.result()}) before {what}")
            return condition()

        await wait_until_async(check, GENEROUS_S, what)

    async def reach(self, *states: BotState) -> None:
        bot = self.running_bot
        await self.until(f"state {'/'.join(s.name for s in states)}", lambda: bot.state in states)

    async def moved(self, source: BotState, target: BotState) -> None:
        await self.until(f"{source.name} -> {target.name}", lambda: (source, target) in self.moves)

    async def exit_code(self) -> int:
        assert self.task is not None
        return await asyncio.wait_for(self.task, GENEROUS_S)

    # ------------------------------------------------------------ putting the bot somewhere

    def gate(self, method: str) -> asyncio.Event:
        """Hold every call of `method` until the gate opens (at the end, at the latest)."""
        gate = self.fake.gates.setdefault(method, asyncio.Event())
        gate.clear()
        return gate

    def open(self, method: str) -> None:
        self.fake.gates.pop(method).set()

    async def slow_job(self) -> str:
        """A job that runs until `release_jobs()`; returns once it runs."""
        job_id = self.fake.add_job("slow")
        bot = self.running_bot
        await self.until(
            f"job {job_id} running",
            lambda: bot.scheduler is not None and job_id in bot.scheduler.running,
        )
        return job_id

    def release_jobs(self) -> None:
        self.release.set()

    async def claim_held(self) -> None:
        """A claim is on its way and held by the coordinator."""
        claims = self.fake.count("claim")
        self.gate("claim")
        await self.until("a claim held", lambda: self.fake.count("claim") > claims)

    async def report_held(self) -> None:
        """A finished job's report is on its way and held; no job runs."""
        self.gate("complete")
        await self.slow_job()
        self.release_jobs()
        await self.until("a report held", lambda: self.fake.count("complete") >= 1)
        await self.reach(S.REPORT)

    async def pause(self) -> None:
        """The coordinator pauses the bot: no more claims."""
        bot = self.running_bot
        self.fake.heartbeat_answers.append(
            m.HeartbeatResponse(assignment=m.Assignment(max_concurrency=2, paused=True))
        )
        await self.until(
            "paused", lambda: bot.session is not None and bot.session.assignment.paused
        )
        await self.until(
            "no claim on its way",
            lambda: bot.scheduler is not None and (bot.scheduler.activity() is not S.CLAIM),
        )

    async def claims_back_off(self, retry_after_s: float = 3600.0) -> None:
        """The next claim is refused (503, Retry-After): claims wait (BACKOFF)."""
        before = self.entered(S.BACKOFF)
        self.fake.fail_next("claim", OverloadedError(503, "busy", retry_after_s=retry_after_s))
        await self.until("claims back off", lambda: self.entered(S.BACKOFF) > before)

    def entered(self, state: BotState) -> int:
        return sum(1 for _, target in self.moves if target is state)

    def command(self, command: m.BotCommand) -> None:
        self.fake.heartbeat_answers.append(m.HeartbeatResponse(command=command))

    def forget_bot(self) -> None:
        """The coordinator forgets the bot: the next heartbeat gets 404."""
        self.fake.fail_next("heartbeat", NotFoundError(404, "unknown bot"))

    def cut(self) -> None:
        self.fake.unreachable = True

    def mend(self) -> None:
        self.fake.unreachable = False

    def break_outbox(self) -> None:
        """The outbox file disappears from under the bot (checked before each heartbeat)."""
        (self.state_dir / OUTBOX_FILE).unlink()

    def stop(self) -> None:
        self.running_bot.request_stop("test")

    # ------------------------------------------------------------ the end

    async def finish(self) -> None:
        """Let everything go and stop the bot (hard if it must)."""
        self.release_jobs()
        self.mend()
        for gate in self.fake.gates.values():
            gate.set()
        if self.bot is None or self.task is None:
            return
        if not self.task.done():
            self.bot.request_stop("teardown")
            try:
                await asyncio.wait_for(asyncio.shield(self.task), 5)
            except TimeoutError:
                self.bot.request_stop("teardown")
        await asyncio.wait_for(self.task, GENEROUS_S)
