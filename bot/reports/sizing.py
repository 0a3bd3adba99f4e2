"""Reports against the coordinator's request limit (`config.max_body_bytes`).

A report no request can carry can never be delivered, and retrying it would hold its
job for ever. So a result too large becomes a `fail` of its job, for good, naming both
sizes; an error text too large is cut, and the failure keeps its `retryable`. The same
happens whether the bot knew the limit beforehand or learnt it from a 413.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from botfleet.protocol import encode
from botfleet.protocol import messages as m

log = logging.getLogger(__name__)

# Room for the request around a report: `{"instance_id": "…", "reports": […]}`, with an
# instance id of up to 200 characters (800 bytes in UTF-8).
ENVELOPE_BYTES = 1024
# An error text cut to fit is this many characters long at most, its start and a note.
CUT_ERROR_CHARS = 1000


def size(item: m.ReportItem) -> int:
    """The report's encoded size in bytes."""
    return len(encode(item))


def fits(item_bytes: int, limit_bytes: int) -> bool:
    return item_bytes + ENVELOPE_BYTES <= limit_bytes


def fit(item: m.ReportItem, limit_bytes: int) -> m.ReportItem:
    """`item`, or what stands for it when no request under `limit_bytes` can carry it."""
    item_bytes = size(item)
    if fits(item_bytes, limit_bytes):
        return item
    return shrunk(item, limit_bytes) or item


def shrunk(item: m.ReportItem, limit_bytes: int | None) -> m.ReportItem | None:
    """The report that stands for `item`, too large for the coordinator (`limit_bytes`,
    None when it did not say): a result becomes a failure for good, a long error text is
    cut. None when there is nothing left to make smaller."""
    limit = f"{limit_bytes} bytes" if limit_bytes is not None else "unknown"
    if item.action == "complete":
        result_bytes = len(encode(item.result or {}))
        error = (
            f"result too large to deliver: {result_bytes} bytes encoded, over the "
            f"coordinator's request limit ({limit}; botfleet server --max-body-bytes)"
        )
        retryable = False
    else:
        text = item.error or ""
        if len(text) <= CUT_ERROR_CHARS:
            return None
        note = (
            f"… (error text cut: {len(text.encode())} bytes did not fit the coordinator's "
            f"request limit, {limit})"
        )
        error = text[: CUT_ERROR_CHARS - len(note)] + note
        retryable = item.retryable
    log.warning("job %s: %s", item.job_id, error)
    return m.ReportItem(
        job_id=item.job_id, attempt=item.attempt, action="fail", error=error, retryable=retryable
    )


def fitting(items: Sequence[m.ReportItem], budget_bytes: int) -> int:
    """How many of `items`, from the front, fit in `budget_bytes` of one request's list."""
    used = 0
    for count, item in enumerate(items):
        used += size(item) + 1  # and a comma
        if used > budget_bytes:
            return count
    return len(items)


def groups(
    items: Sequence[m.ReportItem], limit_bytes: int | None, most: int
) -> list[list[m.ReportItem]]:
    """`items` in order, in groups of at most `most` whose request fits `limit_bytes`
    (each item fitting alone); with no limit known, by count only."""
    if limit_bytes is None:
        return [list(items[start : start + most]) for start in range(0, len(items), most)]
    result: list[list[m.ReportItem]] = []
    group: list[m.ReportItem] = []
    used = ENVELOPE_BYTES
    for item in items:
        item_bytes = size(item) + 1
        if group and (len(group) >= most or used + item_bytes > limit_bytes):
            result.append(group)
            group, used = [], ENVELOPE_BYTES
        group.append(item)
        used += item_bytes
    if group:
        result.append(group)
    return result
