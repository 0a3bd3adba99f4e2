"""Helpers of the PostgreSQL-only tests: many coordinators' worth of bots and jobs."""

from __future__ import annotations

from datetime import timedelta

from botfleet.clock import FakeClock
from coordinator.store.base import NewJob, Registration

DEADLINE_S = 30.0


def registration(clock: FakeClock, key: str, max_concurrency: int = 1000) -> Registration:
    now = clock.now()
    return Registration(
        bot_key=key,
        instance_id=f"{key}-instance",
        name=key,
        version="1.0.0",
        capabilities=("sum",),
        resources={},
        constraints={},
        meta={},
        token_hash="hash",
        token_expires_at=now + timedelta(hours=1),
        lease_until=now + timedelta(seconds=120),
        default_max_concurrency=max_concurrency,
    )


def new_jobs(clock: FakeClock, count: int, max_attempts: int = 3) -> list[NewJob]:
    return [
        NewJob("sum", {"a": i, "b": 1}, clock.now(), priority=i % 3, max_attempts=max_attempts)
        for i in range(count)
    ]
