"""Group commit for single reports: one store transaction for many `complete`/`fail` calls.

A bot that reports each job with its own request (the base protocol's way) costs one write
transaction per job, and the store's writer is the bottleneck. Here, reports of one bot
that arrive while that bot's previous store call is in flight wait for it and then go
together in the next call. The first report is not delayed (it goes at the next turn of
the event loop), and the outcome of each is exactly what it would have been alone: the
store applies a batch in order, each report against the state the earlier ones left.
"""

from __future__ import annotations

import asyncio
import logging

from coordinator.store.base import ReportInput, ReportOutcome, Store, StoreError

log = logging.getLogger(__name__)

Pending = list[tuple[ReportInput, "asyncio.Future[ReportOutcome]"]]


class ReportCoalescer:
    def __init__(self, store: Store, max_batch: int = 1000) -> None:
        self._store = store
        self._max_batch = max_batch
        self._pending: dict[str, Pending] = {}
        self._flushers: dict[str, asyncio.Task[None]] = {}

    async def report(self, bot_id: str, report: ReportInput) -> ReportOutcome:
        future: asyncio.Future[ReportOutcome] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(bot_id, []).append((report, future))
        if bot_id not in self._flushers:
            self._flushers[bot_id] = asyncio.create_task(
                self._flush(bot_id), name=f"botfleet-reports-{bot_id}"
            )
        # Shielded: a client that hangs up does not take the others' batch with it.
        return await asyncio.shield(future)

    async def close(self) -> None:
        """Let the batches in flight finish (at shutdown)."""
        flushers = list(self._flushers.values())
        if flushers:
            await asyncio.gather(*flushers, return_exceptions=True)

    async def _flush(self, bot_id: str) -> None:
        batch: Pending = []
        try:
            while True:
                waiting = self._pending.pop(bot_id, [])
                if not waiting:
                    return
                batch, rest = waiting[: self._max_batch], waiting[self._max_batch :]
                if rest:
                    self._pending[bot_id] = rest
                await self._send(bot_id, batch)
                batch = []
        finally:
            self._flushers.pop(bot_id, None)
            # Only when cancelled mid-way: nobody may wait forever.
            leftover = batch + self._pending.pop(bot_id, [])
            for _, future in leftover:
                if not future.done():
                    future.set_exception(StoreError("the coordinator is shutting down"))

    async def _send(self, bot_id: str, batch: Pending) -> None:
        try:
            outcomes = await self._store.report(bot_id, [report for report, _ in batch])
        except Exception as exc:  # every caller of this batch gets the failure
            log.debug("report batch of %s (%d) failed: %s", bot_id, len(batch), exc)
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)
