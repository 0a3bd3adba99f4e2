"""The log loop: sends the buffered lines of every job, in batches, now and then.

Best effort, and never in a report's way: it has its own task and its own calls, a
batch the coordinator cannot take now goes back to the buffer (which stays bounded),
and a batch it refuses (the attempt is not this bot's any more, too large) is dropped.
Without the `logs` feature the coordinator keeps no lines, so none are kept here.
"""

from __future__ import annotations

import asyncio
import logging

from bot.errors import CoordinatorError
from bot.joblog.buffer import Batch, LogBuffer
from bot.link.http import Api
from bot.link.session import Session
from bot.waiting import sleep_or
from bot.work.hooks import SchedulerHooks
from botfleet.clock import Clock
from botfleet.protocol import joblogs as wire
from botfleet.protocol import messages as m

log = logging.getLogger(__name__)

SHIP_INTERVAL_S = 0.5
MAX_ROUND_LINES = 5000  # lines taken from the buffer per round
BATCH_LINES = 1000  # the protocol's MAX_BATCH_LINES
# Characters of text per batch: even written as six-byte JSON escapes, well below the
# protocol's MAX_BATCH_BYTES.
BATCH_CHARS = 64 * 1024
SENDS_AT_ONCE = 4


class LogShipper:
    def __init__(
        self,
        *,
        api: Api,
        session: Session,
        buffer: LogBuffer,
        clock: Clock,
        hooks: SchedulerHooks,
        interval_s: float = SHIP_INTERVAL_S,
    ) -> None:
        self._api = api
        self._session = session
        self._buffer = buffer
        self._clock = clock
        self._hooks = hooks
        self._interval_s = interval_s
        self.sent_lines = 0
        self.refused_lines = 0  # lines of batches the coordinator refused for good

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await sleep_or(self._clock, self._interval_s, stop)
            await self.ship()
        await self.ship()  # the last lines, once, without waiting for a closed network

    async def ship(self) -> None:
        """Send what the buffer holds now, a round at a time."""
        buffer = self._buffer
        if not self._session.has(m.FEATURE_LOGS):
            buffer.clear()
            return
        while len(buffer) and self._hooks.reachable():
            batches = buffer.take(MAX_ROUND_LINES, BATCH_LINES, BATCH_CHARS)
            if self._session.has(m.FEATURE_LOGS_BULK):
                unsent = await self._send_bulk(batches)
            else:
                unsent = await self._send_each(batches)
            if unsent:
                buffer.put_back(unsent)
                return

    async def _send_bulk(self, batches: list[Batch]) -> list[Batch]:
        """Several attempts' batches per call, within one batch's limits."""
        groups = _groups(batches)
        for number, group in enumerate(groups):
            request = wire.BulkLogRequest(
                instance_id=self._session.instance_id,
                batches=[
                    wire.JobLogBatch(
                        job_id=batch.job_id,
                        attempt=batch.attempt,
                        lines=batch.lines,
                        dropped=batch.dropped,
                    )
                    for batch in group
                ],
            )
            try:
                answer = await self._api.logs_bulk(request)
            except CoordinatorError as exc:
                if exc.transient:
                    return [batch for rest in groups[number:] for batch in rest]
                self._refused(group, exc)
                continue
            for batch, result in zip(group, answer.results, strict=False):
                if result.status == "accepted":
                    self.sent_lines += len(batch.lines)
                else:
                    self._refused([batch], result.status)
        return []

    async def _send_each(self, batches: list[Batch]) -> list[Batch]:
        """One call per batch, a few at a time; those that may succeed later come back."""
        unsent: list[Batch] = []
        for start in range(0, len(batches), SENDS_AT_ONCE):
            group = batches[start : start + SENDS_AT_ONCE]
            sent = await asyncio.gather(*(self._send(batch) for batch in group))
            unsent.extend(batch for batch, ok in zip(group, sent, strict=True) if not ok)
            if unsent:
                unsent.extend(batches[start + SENDS_AT_ONCE :])
                break
        return unsent

    async def _send(self, batch: Batch) -> bool:
        """False when the batch may go through later (the network, the server's load)."""
        request = wire.LogBatch(
            instance_id=self._session.instance_id,
            attempt=batch.attempt,
            lines=batch.lines,
            dropped=batch.dropped,
        )
        try:
            await self._api.logs(batch.job_id, request)
        except CoordinatorError as exc:
            if exc.transient:
                return False
            self._refused([batch], exc)
            return True
        self.sent_lines += len(batch.lines)
        return True

    def _refused(self, batches: list[Batch], why: object) -> None:
        for batch in batches:
            self.refused_lines += len(batch.lines)
            log.debug("log lines of %s not kept: %s", batch.job_id, why)


def _groups(batches: list[Batch]) -> list[list[Batch]]:
    """Consecutive batches packed into calls of at most one batch's lines and characters."""
    groups: list[list[Batch]] = []
    lines = chars = 0
    for batch in batches:
        size = len(batch.lines)
        if not groups or lines + size > BATCH_LINES or chars + batch.chars > BATCH_CHARS:
            groups.append([])
            lines = chars = 0
        groups[-1].append(batch)
        lines += size
        chars += batch.chars
    return groups
