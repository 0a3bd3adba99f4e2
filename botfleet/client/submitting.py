"""Jobs as the client sends them: every one carries an idempotency key, so a submit
retried after a lost answer finds the job it already made instead of making another."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypedDict, Unpack

import msgspec

from botfleet.protocol import messages as m

BULK_LIMIT = 1000  # the protocol: POST /v1/jobs/bulk takes at most 1000 jobs
KEY_PREFIX = "client-"

JobSpec = m.SubmitJob | tuple[str, Mapping[str, Any]]
# Labels a job's bot must have: a value, or the values allowed (docs/protocol.md, "Labels").
Requires = Mapping[str, str | Sequence[str]]


class JobOptions(TypedDict, total=False):
    """A submit's optional fields, as the protocol names them (docs/protocol.md)."""

    priority: int
    delay_ms: int
    run_at: datetime
    max_attempts: int
    timeout_s: float
    idempotency_key: str
    metadata: Mapping[str, Any]
    requires: Requires
    # Ids of jobs (or, in `submit_many`, "#N" for the N-th job given) to wait for.
    after: Sequence[str]
    limits: Sequence[str]  # names of the fleet-wide limits it falls under


def new_job(
    op: str | m.SubmitJob,
    payload: Mapping[str, Any] | None = None,
    **options: Unpack[JobOptions],
) -> m.SubmitJob:
    """`op` and its payload and options, or a ready `SubmitJob` (then alone)."""
    if isinstance(op, m.SubmitJob):
        if payload is not None or options:
            raise TypeError("give a SubmitJob alone, or an op with its payload and options")
        return op
    return m.SubmitJob(
        op=op,
        payload=dict(payload or {}),
        priority=options.get("priority", 0),
        delay_ms=options.get("delay_ms"),
        run_at=options.get("run_at"),
        max_attempts=options.get("max_attempts", 3),
        timeout_s=options.get("timeout_s"),
        idempotency_key=options.get("idempotency_key"),
        metadata=dict(options.get("metadata") or {}),
        requires=wire_requires(options.get("requires")),
        after=list(options.get("after") or ()),
        limits=list(options.get("limits") or ()),
    )


def wire_requires(requires: Requires | None) -> dict[str, str | list[str]] | None:
    """Requirements as the protocol sends them (None: none)."""
    if not requires:
        return None
    return {
        key: value if isinstance(value, str) else list(value) for key, value in requires.items()
    }


def keyed(specs: Iterable[JobSpec], requires: Requires | None = None) -> list[m.SubmitJob]:
    """The jobs, each with its own key or one generated here (`client-<uuid>:<index>`);
    `requires` goes to every job that has no requirements of its own."""
    base = f"{KEY_PREFIX}{uuid.uuid4().hex}"
    shared = wire_requires(requires)
    jobs = []
    for index, spec in enumerate(specs):
        if isinstance(spec, m.SubmitJob):
            job = spec
            if job.idempotency_key is None:
                job = msgspec.structs.replace(job, idempotency_key=f"{base}:{index}")
            if shared is not None and job.requires is None:
                job = msgspec.structs.replace(job, requires=shared)
        else:  # built with its key at once: this loop runs per job of a bulk submit
            op, payload = spec
            payload = payload if isinstance(payload, dict) else dict(payload)
            job = m.SubmitJob(
                op=op, payload=payload, idempotency_key=f"{base}:{index}", requires=shared
            )
        jobs.append(job)
    return jobs


def chunks(jobs: list[m.SubmitJob], size: int = BULK_LIMIT) -> list[list[m.SubmitJob]]:
    """Bulk requests of at most `size` jobs; jobs that name others by "#N" need one."""
    if len(jobs) > size and any(ref.startswith("#") for job in jobs for ref in job.after):
        raise ValueError(
            f'"#N" references name jobs of the same request: submit at most {size} jobs '
            "in that call"
        )
    return [jobs[start : start + size] for start in range(0, len(jobs), size)]
