"""Prefetch (feature `prefetch`): a bot gives back jobs it claimed and has not started.

A job handed out under a prefetch claim waits in the bot's buffer until a slot frees
up. One the bot will not start soon enough (its hold time passed, the bot drains) goes
back to the queue with `POST /v1/jobs/release`, without using an attempt.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from botfleet.protocol.base import Attempt, NonEmpty, Struct

ReleaseStatus = Literal["released", "conflict", "not_found"]
MAX_RELEASE_JOBS = 1000


class ReleaseItem(Struct, kw_only=True):
    job_id: NonEmpty
    attempt: Attempt  # the attempt the job was handed out under: only its holder may release


class ReleaseRequest(Struct, kw_only=True):
    instance_id: NonEmpty
    jobs: Annotated[list[ReleaseItem], msgspec.Meta(min_length=1, max_length=MAX_RELEASE_JOBS)]


class ReleaseResult(Struct, kw_only=True):
    job_id: str
    # released: back in the queue (also for a repeat of a release already applied);
    # conflict: this bot no longer holds that attempt (it ran out, or the job finished);
    # not_found: no such job.
    status: ReleaseStatus


class ReleaseResponse(Struct, kw_only=True):
    results: list[ReleaseResult] = msgspec.field(default_factory=list)
