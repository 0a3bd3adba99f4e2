"""A hedged call: sent again when its answer is late, the first answer wins.

For a call the coordinator answers alike however often it comes (a claim under its
`claim_id`): a request delayed on the way (a congested link, a proxy's queue) would
otherwise hold the caller for as long as the delay lasts. After `hedge_s` without an
answer one more copy goes out, and another after `hedge_s` more; whichever answers
first wins. At most `MAX_OUT` copies are on their way at once, so a slow coordinator
gets a bounded number of calls, never a storm. A copy that fails while another is still
out is replaced at once if `retry(error)` allows (the caller's retry budget): a copy that
failed fast (a 503, a reset) is no longer on its way, so it does not count against
`MAX_OUT`; a lossy link would otherwise use up the copies while the first waits out its
delay. `MAX_SENT` bounds the copies in all.
A copy still out when another answered is not cancelled: it may already be on its way
to the coordinator, which acts on it all the same, so its answer is handed back to be
looked at when it comes (`Hedged.late`).

When to hedge follows the calls' own round trips (`RoundTrips`): twice the 90th
percentile of the latest ones, so that on a healthy link about one call in twenty or
fewer is sent twice, between a floor and the configured ceiling.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from botfleet.clock import Clock

T = TypeVar("T")

MAX_OUT = 3  # copies of one call on their way at once
MAX_SENT = 6  # copies of one call in all, hedges and replacements of failed copies included
# Never sooner: a copy must not race an answer on its way. Above twice a loopback or LAN
# round trip; on a slower link twice the 90th percentile is above it anyway. Every claim
# delayed on its way waits this long at least (at 50 ms, one delayed claim in twenty
# cost a bot on loopback about a sixth of its time under faults).
HEDGE_FLOOR_S = 0.02
ROUND_TRIPS_KEPT = 64
ROUND_TRIPS_NEEDED = 8  # fewer known: hedge at the ceiling


class RoundTrips:
    """The latest round trips of calls answered without a hedge, and when to hedge."""

    def __init__(self, kept: int = ROUND_TRIPS_KEPT) -> None:
        self._seconds: collections.deque[float] = collections.deque(maxlen=kept)

    def add(self, seconds: float) -> None:
        self._seconds.append(max(0.0, seconds))

    def hedge_after_s(self, ceiling_s: float) -> float:
        """Twice the 90th percentile of the round trips kept, within the floor and
        `ceiling_s` (the ceiling until enough are known)."""
        if len(self._seconds) < ROUND_TRIPS_NEEDED:
            return ceiling_s
        ordered = sorted(self._seconds)
        p90 = ordered[min(len(ordered) - 1, (9 * len(ordered)) // 10)]
        return min(ceiling_s, max(HEDGE_FLOOR_S, 2.0 * p90))


@dataclass(slots=True)
class Hedged(Generic[T]):
    answer: T
    hedged: bool  # a second copy went out
    late: list[asyncio.Future[T]] = field(default_factory=list)  # copies still on their way


def _never(error: BaseException) -> bool:
    return False


async def hedged_call(
    send: Callable[[], Awaitable[T]],
    clock: Clock,
    hedge_s: float | None,
    retry: Callable[[BaseException], bool] = _never,
) -> Hedged[T]:
    """`send()`, and once more each `hedge_s` without an answer (None: never), or at once
    in place of a failed copy while another is out (if `retry(error)`); at most `MAX_OUT`
    on their way at once and `MAX_SENT` in all.

    Raises the first copy's error when every copy failed. Cancelling the caller cancels
    every copy.
    """
    first: asyncio.Future[T] = asyncio.ensure_future(send())
    if hedge_s is None:
        return Hedged(await first, hedged=False)
    calls = [first]
    errors: dict[asyncio.Future[T], BaseException] = {}
    timer: asyncio.Future[None] | None = asyncio.ensure_future(clock.sleep(hedge_s))
    try:
        while True:
            waiting: set[asyncio.Future[Any]] = {call for call in calls if not call.done()}
            if timer is not None:
                waiting.add(timer)
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            for call in calls:  # in the order sent: the first copy wins a tie
                if call.done() and not call.cancelled() and call.exception() is None:
                    late = [other for other in calls if not other.done()]
                    _read_errors(calls)
                    return Hedged(call.result(), hedged=len(calls) > 1, late=late)
            out = sum(not call.done() for call in calls)
            for call in list(calls):
                if not call.done() or call.cancelled() or call in errors:
                    continue
                error = errors[call] = call.exception() or asyncio.CancelledError()
                if out and out < MAX_OUT and len(calls) < MAX_SENT and retry(error):
                    calls.append(asyncio.ensure_future(send()))
                    out += 1
            if timer is not None and timer.done():
                timer = None
                if out and out < MAX_OUT and len(calls) < MAX_SENT:
                    calls.append(asyncio.ensure_future(send()))
                    timer = asyncio.ensure_future(clock.sleep(hedge_s))
            if all(call.done() for call in calls):
                if not errors:
                    raise asyncio.CancelledError  # every copy was cancelled from outside
                raise next(errors[call] for call in calls if call in errors)
    except BaseException:
        for call in calls:
            call.cancel()
        raise
    finally:
        if timer is not None:
            timer.cancel()


def _read_errors(calls: list[asyncio.Future[T]]) -> None:
    """Mark the errors of copies that failed alongside the winner as seen (their failure
    changes nothing), so that none is logged as never retrieved."""
    for call in calls:
        if call.done() and not call.cancelled():
            call.exception()
