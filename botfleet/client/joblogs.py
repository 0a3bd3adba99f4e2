"""Reading a job's log lines: page after page, and following them while the job runs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from botfleet.protocol import joblogs as wire

FOLLOW_WAIT_MS = 10_000  # each read of a follower waits this long for new lines

# (after, wait_ms) -> the page of lines after that cursor
FetchPage = Callable[[int, int], Awaitable[wire.JobLogs]]


async def log_lines(
    fetch: FetchPage, *, after: int = 0, follow: bool = False
) -> AsyncIterator[wire.StoredLogLine]:
    """Every line after `after`, in order. Without `follow`, the lines there are now;
    with it, new ones too, until the job has ended and its last lines have come."""
    while True:
        page = await fetch(after, FOLLOW_WAIT_MS if follow else 0)
        for line in page.lines:
            yield line
        after = page.next_after
        if not page.lines and (page.done or not follow):
            return
