"""Handlers for the guide "Writing handlers": an async one and a plain one.

A bot loads this module when it is importable (installed, or on PYTHONPATH) and named
in BOT_PLUGINS or --plugins:

    PYTHONPATH=docs/examples botfleet bot --plugins handlers

`handler_jobs.py` submits jobs to these handlers and shows each way a job ends.
"""

from __future__ import annotations

# --8<-- [start:imports]
import asyncio
import hashlib
import logging
from typing import Annotated, Any, TypeVar

import msgspec

from bot import Job, PluginError, op

log = logging.getLogger(__name__)
# --8<-- [end:imports]
T = TypeVar("T")


# --8<-- [start:validation]
class WordCount(msgspec.Struct, forbid_unknown_fields=True):
    """The payload of `word_count`."""

    text: str
    top: Annotated[int, msgspec.Meta(ge=1, le=100)] = 3


def payload_as(kind: type[T], job: Job) -> T:
    """The job's payload as `kind`. A payload that does not fit fails the job
    at once and for good (PluginError is not retried), with msgspec's message
    naming the field."""
    try:
        return msgspec.convert(job.payload, kind)
    except msgspec.ValidationError as exc:
        raise PluginError(f"invalid payload: {exc}") from None


# --8<-- [end:validation]


# --8<-- [start:async]
@op("word_count")
async def word_count(job: Job) -> dict[str, Any]:
    """Count the words of a text. Async: it runs on the bot's event loop, so
    it must not block; a long loop gives the loop a turn now and then."""
    payload = payload_as(WordCount, job)
    words = payload.text.lower().split()
    counts: dict[str, int] = {}
    for done, word in enumerate(words, 1):
        counts[word] = counts.get(word, 0) + 1
        if done % 10_000 == 0:
            job.progress(done / len(words), f"{done} words")
            await asyncio.sleep(0)  # heartbeats and other jobs run meanwhile
    log.info("counted %d words", len(words))
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    top = [[word, count] for word, count in ranked[: payload.top]]
    return {"words": len(words), "top": top}


# --8<-- [end:async]


# --8<-- [start:plain]
class Digest(msgspec.Struct, forbid_unknown_fields=True):
    """The payload of `digest`."""

    seed: str
    rounds: Annotated[int, msgspec.Meta(ge=1, le=100_000_000)] = 1000


@op("digest")
def digest(job: Job) -> dict[str, Any] | None:
    """Hash a seed over and over. Plain (blocking, CPU-bound): it runs in a
    thread of its own. A thread cannot be stopped from outside, so it checks
    `job.cancelled()` and returns early once the job was cancelled, timed out,
    or the bot's drain ran out."""
    payload = payload_as(Digest, job)
    value = payload.seed.encode()
    for round_ in range(1, payload.rounds + 1):
        value = hashlib.sha256(value).digest()
        if round_ % 10_000 == 0:
            if job.cancelled():
                log.warning("stopped at round %d of %d", round_, payload.rounds)
                return None  # the job is already reported: this is not used
            job.progress(round_ / payload.rounds, f"round {round_}")
    return {"digest": value.hex(), "rounds": payload.rounds}


# --8<-- [end:plain]
