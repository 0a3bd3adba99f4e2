"""Jobs that wait for other jobs (submit's `after`): the decisions both backends share.

A job submitted with `after` stays queued, unclaimable, while any job it names has not
succeeded (`JobRecord.waiting_on` counts those). The transaction that ends a
dependency settles its dependants: a success takes one off their count (at 0 they are
claimable), a failure or cancellation cancels them with an error naming it, and that
cancellation settles their own dependants in turn. An operator's retry of a failed
dependency does not bring back the dependants it cancelled; a retried dependant runs
without waiting (its dependencies were dropped when it was cancelled).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

MAX_AFTER = 100
SUCCEEDED = "succeeded"
UNSUCCESSFUL = frozenset({"failed", "cancelled"})
BATCH_REFERENCE_PREFIX = "#"


class UnknownDependency(ValueError):
    """`after` names a job that does not exist: nothing of the submit was written."""

    def __init__(self, index: int, job_id: str) -> None:
        super().__init__(f"`after` names an unknown job: {job_id}")
        self.index = index  # the job of the submit that named it
        self.job_id = job_id


def batch_reference(entry: str) -> int | None:
    """N for an entry "#N" (a job earlier in the same submit), None for a job id."""
    if not entry.startswith(BATCH_REFERENCE_PREFIX):
        return None
    digits = entry[len(BATCH_REFERENCE_PREFIX) :]
    if not digits.isdigit() or not digits.isascii():
        raise ValueError(f"{entry!r} is neither a job id nor a reference #N to an earlier job")
    return int(digits)


def reference_problem(entry: str, index: int) -> str | None:
    """Why `entry` of the job at `index` of a submit cannot be accepted (None: it can):
    a reference must name an earlier job of the same submit."""
    try:
        number = batch_reference(entry)
    except ValueError as error:
        return str(error)
    if number is None:
        return None
    if number == index:
        return f"{entry!r} names the job itself"
    if number > index:
        return f"{entry!r} names a later job; a job may wait only for earlier ones"
    return None


def resolve_after(after: Sequence[str], earlier_ids: Sequence[str]) -> list[str]:
    """The job ids `after` names, once each: "#N" becomes the id of the N-th job of the
    submit (`earlier_ids`, checked beforehand by `reference_problem`)."""
    resolved: dict[str, None] = {}
    for entry in after:
        number = batch_reference(entry)
        resolved[entry if number is None else earlier_ids[number]] = None
    return list(resolved)


def dependency_error(job_id: str, state: str) -> str:
    """The error of a dependant cancelled because `job_id` ended `state`."""
    return f"dependency {job_id} {state}"


def waiting_for(pending: Iterable[tuple[str, str]]) -> str | None:
    """What a queued job waits for, from (id, state) of its unfinished dependencies."""
    named = [f"{job_id} ({state})" for job_id, state in sorted(pending)]
    return f"waiting for {', '.join(named)}" if named else None


@dataclass(frozen=True, slots=True)
class Start:
    """How a new job with dependencies starts: cancelled at once (`error`), or waiting
    for `pending` (empty: claimable now)."""

    pending: tuple[str, ...] = ()
    error: str | None = None


def start(index: int, after: Sequence[str], states: Mapping[str, str]) -> Start:
    """Decide a new job's start from its dependencies' current states (UnknownDependency
    for one missing from `states`)."""
    pending: list[str] = []
    for job_id in after:
        state = states.get(job_id)
        if state is None:
            raise UnknownDependency(index, job_id)
        if state in UNSUCCESSFUL:
            return Start(error=dependency_error(job_id, state))
        if state != SUCCEEDED:
            pending.append(job_id)
    return Start(pending=tuple(pending))


@dataclass(slots=True)
class Settlement:
    """What the end of some dependencies does to their dependants."""

    cancel: dict[str, str] = field(default_factory=dict)  # dependant -> error
    release: dict[str, int] = field(default_factory=dict)  # dependant -> count succeeded


def settle(links: Iterable[tuple[str, str]], states: Mapping[str, str]) -> Settlement:
    """From (dependency, dependant) links whose dependency ended in `states`: the first
    unsuccessful dependency (by id) names each cancelled dependant's error. (The links
    come from jobs that just ended, so no other state occurs.)"""
    outcome = Settlement()
    for after_id, job_id in sorted(links):
        state = states.get(after_id)
        if state == SUCCEEDED:
            outcome.release[job_id] = outcome.release.get(job_id, 0) + 1
        elif state in UNSUCCESSFUL and job_id not in outcome.cancel:
            outcome.cancel[job_id] = dependency_error(after_id, state)
    for job_id in outcome.cancel:
        outcome.release.pop(job_id, None)
    return outcome
