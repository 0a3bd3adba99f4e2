"""What the long-poll tests share: a queue-only store and waiting helpers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from botfleet.clock import FakeClock, SystemClock
from coordinator.longpoll import LongPoller, Waiters
from coordinator.store.base import ClaimInput, ClaimOutlook, JobRecord
from tests.support.processes import wait_until_async

NOW = datetime(2026, 1, 19, 10, 0, tzinfo=UTC)
GENEROUS_S = 30.0


async def eventually(predicate: Callable[[], bool]) -> None:
    async def check() -> bool:
        return predicate()

    await wait_until_async(check, GENEROUS_S, "the condition")


def job_record(job_id: str, state: str = "queued", run_at: datetime = NOW) -> JobRecord:
    return JobRecord(
        id=job_id,
        op="sum",
        payload={},
        state=state,
        priority=0,
        attempt=1,
        max_attempts=3,
        created_at=NOW,
        run_at=run_at,
    )


class QueueOnly:
    """The store verbs the poller uses: a list of queued jobs, each due at its run_at."""

    def __init__(self, clock: FakeClock | SystemClock) -> None:
        self.clock = clock
        self.queued: list[JobRecord] = []
        self.jobs: dict[str, JobRecord] = {}
        self.claims = 0
        self.reads = 0
        self.outlooks = 0
        self.known_bot = True

    async def claim_jobs(self, claim: ClaimInput) -> list[JobRecord] | None:
        self.claims += 1
        if not self.known_bot:
            return None
        now = self.clock.now()
        due = [j for j in self.queued if j.op in claim.operations and j.run_at <= now]
        due = due[: claim.limit]
        for claimed in due:
            self.queued.remove(claimed)
        return due

    async def next_run_at(
        self, operations: Sequence[str], bot_id: str | None = None
    ) -> datetime | None:
        self.reads += 1
        return self._next_run_at(operations)

    async def claim_outlook(
        self, bot_id: str, operations: Sequence[str], claim_id: str | None = None
    ) -> ClaimOutlook:
        self.outlooks += 1
        return ClaimOutlook(bot_online=self.known_bot, next_run_at=self._next_run_at(operations))

    def _next_run_at(self, operations: Sequence[str]) -> datetime | None:
        times = [j.run_at for j in self.queued if j.op in operations]
        return min(times) if times else None

    async def get_job(self, job_id: str) -> JobRecord | None:
        return self.jobs.get(job_id)

    async def seconds_until_tokens(self, operations: Sequence[str]) -> float | None:
        return None  # no limits here: a due job is always claimable


def poller_on(store: QueueOnly, waiters: Waiters, recheck_s: float = GENEROUS_S) -> LongPoller:
    return LongPoller(store, store.clock, waiters, recheck_s)  # type: ignore[arg-type]


async def until_waiting(waiters: Waiters, count: int = 1) -> None:
    await eventually(lambda: waiters.waiting() >= count)
