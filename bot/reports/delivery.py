"""Delivering reports: one batch call when the coordinator offers `batch_report`, else one each.

A report is *done* once the coordinator accepted it, or refused it for good (409
conflict: already terminal or lease lost; 404/403: not ours to report), or once it
stands replaced by a smaller one because no request can carry it (`sizing`); a done
report is never sent again. The rest are *undelivered*: `deliver` keeps them in
the outbox, `flush_outbox` leaves them there.

Batches are cut to fit the coordinator's limit; a batch answered 413 all the same (a
coordinator that does not say its limit) is halved until the report too large is alone,
so it does not sink the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.errors import (
    ConflictError,
    CoordinatorError,
    ForbiddenError,
    NotFoundError,
    RejectedError,
    TooLargeError,
)
from bot.link.http import Api
from bot.link.session import Session
from bot.reports import sizing
from bot.reports.outbox import Outbox, report_key
from botfleet.protocol import messages as m

log = logging.getLogger(__name__)

MAX_BATCH = 1000  # the protocol's bound on `reports`
PARALLEL_REPORTS = 8  # one-by-one reports in flight at once, without batch_report


@dataclass(slots=True)
class Delivery:
    accepted: list[m.ReportItem] = field(default_factory=list)
    dropped: list[m.ReportItem] = field(default_factory=list)  # refused for good
    undelivered: list[m.ReportItem] = field(default_factory=list)
    replaced: list[m.ReportItem] = field(default_factory=list)  # too large; a `fail` went instead
    error: CoordinatorError | None = None  # why `undelivered` were not delivered

    @property
    def done(self) -> list[m.ReportItem]:
        return self.accepted + self.dropped + self.replaced

    def merge(self, other: Delivery) -> None:
        self.accepted += other.accepted
        self.dropped += other.dropped
        self.undelivered += other.undelivered
        self.replaced += other.replaced
        self.error = self.error or other.error


@dataclass(slots=True)
class ReportCounts:
    """Running totals, for metrics."""

    accepted: int = 0
    dropped: int = 0
    kept: int = 0
    replaced: int = 0  # too large to deliver: failed (a result) or cut (an error text)
    rode: int = 0  # of `accepted`: those that rode on a claim (`report_on_claim`)


class Reporter:
    def __init__(self, api: Api, session: Session, outbox: Outbox) -> None:
        self._api = api
        self._session = session
        self.outbox = outbox
        self.counts = ReportCounts()

    async def deliver(self, items: Sequence[m.ReportItem]) -> Delivery:
        """Send; keep what could not be sent in the outbox (`OutboxError` if it cannot)."""
        delivery = await self.send(items)
        if delivery.undelivered:
            log.warning(
                "%d report(s) kept in the outbox: %s", len(delivery.undelivered), delivery.error
            )
            self.outbox.append(delivery.undelivered)
            self.counts.kept += len(delivery.undelivered)
        return delivery

    async def flush_outbox(self) -> Delivery:
        """Send what the outbox holds; remove what is done (rewriting the file)."""
        pending = self.outbox.pending()
        if not pending:
            return Delivery()
        delivery = await self.send(pending)
        kept = {report_key(item) for item in pending}
        # What stands for a report too large, when it could not be sent either.
        self.outbox.append([i for i in delivery.undelivered if report_key(i) not in kept])
        self.outbox.remove({report_key(item) for item in delivery.done})
        if delivery.accepted:
            log.info("outbox: %d report(s) delivered", len(delivery.accepted))
        return delivery

    async def send(self, items: Sequence[m.ReportItem]) -> Delivery:
        delivery = Delivery()
        limit = self._session.max_body_bytes
        if limit is not None:
            items = self._fit(items, limit, delivery)
        batch = self._session.has(m.FEATURE_BATCH_REPORT)
        for chunk in sizing.groups(items, limit if batch else None, MAX_BATCH):
            if delivery.error is not None:
                delivery.undelivered += chunk
                continue
            part = await (self._send_batch(chunk) if batch else self._send_each(chunk))
            delivery.merge(part)
        self.counts.accepted += len(delivery.accepted)
        self.counts.dropped += len(delivery.dropped)
        self.counts.replaced += len(delivery.replaced)
        return delivery

    @staticmethod
    def _fit(items: Sequence[m.ReportItem], limit: int, delivery: Delivery) -> list[m.ReportItem]:
        """`items`, each too large for `limit` replaced (the original counts as done)."""
        fitted = []
        for item in items:
            fitting = sizing.fit(item, limit)
            if fitting is not item:
                delivery.replaced.append(item)
            fitted.append(fitting)
        return fitted

    async def _too_large(self, item: m.ReportItem, exc: TooLargeError) -> Delivery:
        """`item` was refused as too large (413): send what stands for it, or drop it."""
        smaller = sizing.shrunk(item, exc.limit_bytes)
        if smaller is None:
            _log_dropped(item, str(exc), logging.ERROR)
            return Delivery(dropped=[item])
        batch = self._session.has(m.FEATURE_BATCH_REPORT)
        delivery = await (self._send_batch([smaller]) if batch else self._send_each([smaller]))
        delivery.replaced.append(item)
        return delivery

    async def _send_batch(self, items: list[m.ReportItem]) -> Delivery:
        request = m.BatchReportRequest(instance_id=self._session.instance_id, reports=items)
        try:
            answer = await self._api.report_batch(request)
        except TooLargeError as exc:
            if len(items) == 1:
                return await self._too_large(items[0], exc)
            log.info("batch of %d reports too large (%s); halving it", len(items), exc)
            half = len(items) // 2
            delivery = await self._send_batch(items[:half])
            if delivery.error is not None:
                delivery.undelivered += items[half:]
                return delivery
            delivery.merge(await self._send_batch(items[half:]))
            return delivery
        except (RejectedError, NotFoundError) as exc:
            # One bad report must not hold the others back: send them one by one.
            log.warning("batch report refused (%s); sending one by one", exc)
            return await self._send_each(items)
        except CoordinatorError as exc:
            return Delivery(undelivered=items, error=exc)
        return sort_results(items, answer.results)

    async def _send_each(self, items: list[m.ReportItem]) -> Delivery:
        """One call per report, a few at a time (the coordinator may commit them together).

        After a failure that would fail the rest alike (unreachable, overloaded,
        unauthenticated), no new call starts: the rest stay undelivered.
        """
        delivery = Delivery()
        gate = asyncio.Semaphore(PARALLEL_REPORTS)

        async def send(item: m.ReportItem) -> None:
            async with gate:
                if delivery.error is not None:
                    delivery.undelivered.append(item)
                    return
                try:
                    await self._send_one(item)
                except TooLargeError as exc:
                    delivery.merge(await self._too_large(item, exc))
                except ConflictError as exc:
                    _log_dropped(item, str(exc))
                    delivery.dropped.append(item)
                except (NotFoundError, ForbiddenError, RejectedError) as exc:
                    _log_dropped(item, str(exc), logging.WARNING)
                    delivery.dropped.append(item)
                except CoordinatorError as exc:
                    delivery.undelivered.append(item)
                    delivery.error = delivery.error or exc
                else:
                    delivery.accepted.append(item)

        await asyncio.gather(*(send(item) for item in items))
        return delivery

    async def _send_one(self, item: m.ReportItem) -> None:
        instance_id = self._session.instance_id
        if item.action == "complete":
            await self._api.complete(
                item.job_id,
                m.CompleteRequest(
                    instance_id=instance_id, attempt=item.attempt, result=item.result or {}
                ),
            )
        else:
            await self._api.fail(
                item.job_id,
                m.FailRequest(
                    instance_id=instance_id,
                    attempt=item.attempt,
                    error=item.error or "failed",
                    retryable=item.retryable,
                    retry_after_ms=item.retry_after_ms,
                ),
            )


def sort_results(items: Sequence[m.ReportItem], results: Sequence[m.ReportResult]) -> Delivery:
    """Sort reports by the coordinator's answer to them (a batch report's, or a claim's
    that carried them); one the answer leaves out stays undelivered."""
    statuses = {result.job_id: result.status for result in results}
    delivery = Delivery()
    for item in items:
        status = statuses.get(item.job_id)
        if status == "accepted":
            delivery.accepted.append(item)
        elif status is None:
            delivery.undelivered.append(item)
        else:
            level = logging.INFO if status == "conflict" else logging.WARNING
            _log_dropped(item, status, level)
            delivery.dropped.append(item)
    if delivery.undelivered:
        delivery.error = CoordinatorError("the answer left some reports out")
    return delivery


def _log_dropped(item: m.ReportItem, why: str, level: int = logging.INFO) -> None:
    log.log(level, "report %s of job %s dropped: %s", item.action, item.job_id, why)
