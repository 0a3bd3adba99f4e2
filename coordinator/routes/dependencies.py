"""Submit's `after` at the HTTP edge: references checked before any I/O, and an unknown
dependency as a 400 naming it (the rules are `coordinator.store.dependencies`)."""

from __future__ import annotations

from collections.abc import Sequence

from coordinator.auth import Principal
from coordinator.errors import InvalidBody
from coordinator.store.base import NewJob, Store, SubmitOutcome
from coordinator.store.dependencies import UnknownDependency, reference_problem


def check_after(after: Sequence[str], index: int | None, where: str) -> None:
    """Raise InvalidBody for an entry of `after` that is no job id nor a reference to an
    earlier job of the same bulk submit (`index` None: a single submit, which has none)."""
    for position, entry in enumerate(after):
        at = f"{where}.after[{position}]"
        if index is None:
            if entry.startswith("#"):
                raise InvalidBody(f"`#N` references work only in a bulk submit - at `{at}`")
            continue
        problem = reference_problem(entry, index)
        if problem is not None:
            raise InvalidBody(f"{problem} - at `{at}`")


async def submit_checked(
    store: Store, principal: Principal, jobs: Sequence[NewJob], where: str
) -> list[SubmitOutcome]:
    """`store.submit_jobs`, an unknown dependency as InvalidBody; `where` may hold
    `{index}`, the job of the request that named it. A producer may wait only for its
    own jobs: another submitter's is unknown to it, as everywhere else."""
    try:
        if principal.role == "producer":
            await _check_owner(store, principal, jobs)
        return await store.submit_jobs(jobs)
    except UnknownDependency as unknown:
        at = where.format(index=unknown.index)
        raise InvalidBody(
            f"`after` names an unknown job: {unknown.job_id} - at `{at}.after`",
            code="unknown_dependency",
        ) from None


async def _check_owner(store: Store, principal: Principal, jobs: Sequence[NewJob]) -> None:
    for index, job in enumerate(jobs):
        for entry in job.after:
            if entry.startswith("#"):
                continue
            found = await store.get_job(entry)
            if found is None or found.submitted_by != principal.name:
                raise UnknownDependency(index, entry)
