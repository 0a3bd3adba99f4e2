"""Waiting without polling: a claim held until jobs arrive, a job read held until it ends.

`Waiters` is the store's listener and wakes the requests a notice concerns; a notice
can be missed (another process without LISTEN/NOTIFY, a race), so each waiting
request also re-checks about every `recheck_s`, with one read. A claim's first try is
a write transaction when jobs are likely there and a read first when they probably
are not; the process-local hint (`DrainedOperations`) only orders the two.
"""

from coordinator.longpoll.drained import DrainedOperations
from coordinator.longpoll.poller import LongPoller, answers_at_once
from coordinator.longpoll.store_calls import ClaimObserver
from coordinator.longpoll.waiters import ClaimWatch, Waiters

__all__ = [
    "ClaimObserver",
    "ClaimWatch",
    "DrainedOperations",
    "LongPoller",
    "Waiters",
    "answers_at_once",
]
