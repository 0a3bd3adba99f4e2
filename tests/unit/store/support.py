"""Helpers for the backend-independent store suite: sample inputs and waiting."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from botfleet.clock import FakeClock
from coordinator.store.base import (
    AttemptRecord,
    BotRecord,
    ClaimInput,
    HeartbeatInput,
    NewJob,
    Registration,
    ReportInput,
    Store,
)

BOT_LEASE_TTL_S = 120.0
JOB_LEASE_TTL_S = 30.0


def retry_delay_for_tests(attempt: int) -> float:
    """Deterministic policy: attempt n failed -> wait 10 * n seconds."""
    return 10.0 * attempt


def registration(
    clock: FakeClock,
    bot_key: str = "host-a/default",
    instance_id: str = "instance-1",
    capabilities: Sequence[str] = ("sum", "subtract"),
    max_concurrency: int | None = None,
    default_max_concurrency: int = 10,
    labels: dict[str, str] | None = None,
) -> Registration:
    constraints: dict[str, Any] = {}
    if max_concurrency is not None:
        constraints["max_concurrency"] = max_concurrency
    return Registration(
        bot_key=bot_key,
        instance_id=instance_id,
        name=bot_key.rsplit("/", 1)[-1],
        version="1.0.0",
        capabilities=tuple(capabilities),
        resources={"cpu_cores": 2, "mem_mb": 512},
        constraints=constraints,
        meta={"hostname": "host-a", "os": "linux"},
        token_hash="hash-of-" + instance_id,
        token_expires_at=clock.now() + timedelta(hours=1),
        lease_until=clock.now() + timedelta(seconds=BOT_LEASE_TTL_S),
        default_max_concurrency=default_max_concurrency,
        labels=labels or {},
    )


async def register(store: Store, clock: FakeClock, **kwargs: Any) -> BotRecord:
    outcome = await store.register_bot(registration(clock, **kwargs))
    return outcome.bot


def new_job(
    clock: FakeClock,
    op: str = "sum",
    delay_s: float = 0.0,
    payload: dict[str, Any] | None = None,
    **kwargs: Any,
) -> NewJob:
    return NewJob(
        op=op,
        payload=payload if payload is not None else {"a": 1, "b": 2},
        run_at=clock.now() + timedelta(seconds=delay_s),
        **kwargs,
    )


async def submit(store: Store, clock: FakeClock, **kwargs: Any) -> str:
    (outcome,) = await store.submit_jobs([new_job(clock, **kwargs)])
    return outcome.job.id


async def claim_ids(
    store: Store, bot_id: str, operations: Sequence[str] = ("sum",), limit: int = 10
) -> list[str]:
    jobs = await store.claim_jobs(ClaimInput(bot_id, operations, limit, JOB_LEASE_TTL_S))
    assert jobs is not None
    return [job.id for job in jobs]


def complete(job_id: str, attempt: int | None = None, **result: Any) -> ReportInput:
    return ReportInput(job_id=job_id, action="complete", attempt=attempt, result=result)


def fail(
    job_id: str,
    attempt: int | None = None,
    error: str = "boom",
    retryable: bool = True,
    retry_after_ms: int | None = None,
) -> ReportInput:
    return ReportInput(
        job_id=job_id,
        action="fail",
        attempt=attempt,
        error=error,
        retryable=retryable,
        retry_after_ms=retry_after_ms,
    )


async def heartbeat(
    store: Store,
    bot: BotRecord,
    running: Sequence[str] = (),
    lifecycle: str | None = None,
    job_lease_ttl_s: float = JOB_LEASE_TTL_S,
    default_timeout_s: float | None = None,
) -> Any:
    return await store.heartbeat(
        HeartbeatInput(
            bot.id,
            bot.instance_id,
            running,
            lifecycle,
            {"cpu": 0.5, "mem_mb": 100},
            BOT_LEASE_TTL_S,
            job_lease_ttl_s,
            default_timeout_s=default_timeout_s,
        )
    )


@dataclass
class RecordingListener:
    """Records what the store announces (possibly from another task, for PostgreSQL)."""

    available: list[tuple[str, ...]] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    counts: list[int | None] = field(default_factory=list)
    _heard: asyncio.Event = field(default_factory=asyncio.Event)

    def jobs_available(self, operations: Sequence[str], count: int | None = None) -> None:
        self.available.append(tuple(operations))
        self.counts.append(count)
        self._heard.set()

    def jobs_finished(self, job_ids: Sequence[str]) -> None:
        self.finished.extend(job_ids)
        self._heard.set()

    def announced(self, op: str) -> bool:
        return any(op in ops for ops in self.available)

    async def until(self, condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
        """Until `condition` holds, re-checked each time the store announces something;
        fail after a generous deadline."""
        async with asyncio.timeout(timeout_s):
            while not condition():
                self._heard.clear()
                await self._heard.wait()

    async def hears_within(self, timeout_s: float) -> bool:
        """Whether the store announces anything within `timeout_s` from now."""
        self._heard.clear()
        try:
            async with asyncio.timeout(timeout_s):
                await self._heard.wait()
        except TimeoutError:
            return False
        return True


def assert_no_overlapping_leases(attempts: Sequence[AttemptRecord]) -> None:
    """Each attempt ended before the next one was handed out: at most one is live."""
    if not attempts:
        return
    ordered = sorted(attempts, key=lambda a: a.attempt)
    numbers = [a.attempt for a in ordered]
    assert numbers == list(range(numbers[0], numbers[-1] + 1)), numbers
    for earlier, later in itertools.pairwise(ordered):
        assert earlier.ended_at is not None, f"attempt {earlier.attempt} still live"
        assert earlier.ended_at <= later.claimed_at, (earlier, later)
