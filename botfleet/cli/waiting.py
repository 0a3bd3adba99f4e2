"""Wait for submitted jobs to end, reporting counts by state as they change."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence

from botfleet.cli.errors import CliError, from_client
from botfleet.client import AsyncClient, BotfleetError
from botfleet.client.waiting import WATCH_CONCURRENCY, WATCH_WAIT_MS, Deadline, watch
from botfleet.clock import SystemClock
from botfleet.protocol import messages as m

OnCounts = Callable[[Mapping[str, int]], None]


async def wait_for_jobs(
    client: AsyncClient,
    ids: Sequence[str],
    on_counts: OnCounts,
    wait_ms: int = WATCH_WAIT_MS,
    concurrency: int = WATCH_CONCURRENCY,
) -> dict[str, m.JobView]:
    """Return every job's final view; the client waits server-side, never polls."""
    latest: dict[str, str] = dict.fromkeys(ids, "queued")
    finished: dict[str, m.JobView] = {}
    on_counts(Counter(latest.values()))

    async def get(job_id: str, wait_ms: int) -> m.JobView:
        return await client.get(job_id, wait_ms=wait_ms)

    never = Deadline(SystemClock(), None)
    async for view in watch(get, ids, never, wait_ms=wait_ms, concurrency=concurrency):
        latest[view.id] = view.state
        if view.state in m.TERMINAL_STATES:
            finished[view.id] = view
        on_counts(Counter(latest.values()))
    return finished


def first_cli_error(failures: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to show when several concurrent requests failed (they usually share one cause)."""
    for failure in failures.exceptions:
        if isinstance(failure, BaseExceptionGroup):
            return first_cli_error(failure)
        if isinstance(failure, CliError):
            return failure
        if isinstance(failure, BotfleetError):
            return from_client(failure)
    return failures
