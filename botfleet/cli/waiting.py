"""Wait for submitted jobs to end, with `GET /v1/jobs/{id}?wait_ms=` (no busy polling)."""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence

from botfleet.cli.client import OperatorClient
from botfleet.cli.errors import CliError
from botfleet.protocol import messages as m

OnCounts = Callable[[Mapping[str, int]], None]


async def wait_for_jobs(
    client: OperatorClient,
    ids: Sequence[str],
    on_counts: OnCounts,
    wait_ms: int = 5_000,
    concurrency: int = 8,
) -> dict[str, m.JobView]:
    """Return every job's final view, reporting counts by state as they change.

    A few workers each wait on one pending job at a time and put it back at the
    end of the line when it is not done yet. Jobs mostly finish in the order they
    were queued, so the job waited on is usually the next to end, and the ones
    after it are already done by the time they are asked about.
    """
    pending: deque[str] = deque(dict.fromkeys(ids))
    latest: dict[str, str] = dict.fromkeys(pending, "queued")
    finished: dict[str, m.JobView] = {}

    def report() -> None:
        on_counts(Counter(latest.values()))

    async def worker() -> None:
        while pending:
            job_id = pending.popleft()
            view = await client.job(job_id, wait_ms=wait_ms)
            latest[job_id] = view.state
            if view.state in m.TERMINAL_STATES:
                finished[job_id] = view
            else:
                pending.append(job_id)
            report()

    report()
    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(concurrency, len(pending))):
                group.create_task(worker())
    except ExceptionGroup as failures:
        raise first_cli_error(failures) from None
    return finished


def first_cli_error(failures: ExceptionGroup[Exception]) -> Exception:
    """The error to show when several concurrent requests failed (they usually share one cause)."""
    for failure in failures.exceptions:
        if isinstance(failure, ExceptionGroup):
            return first_cli_error(failure)
        if isinstance(failure, CliError):
            return failure
    return failures
