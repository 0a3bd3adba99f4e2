"""The lifecycle: the allowed moves between `BotState`s as data, and the one object that moves.

A move not in `TRANSITIONS` raises `InvalidTransition`; every move is logged and
announced to listeners (heartbeats send the state, the bot heartbeats at once on
a change of phase). docs/bot.md draws the table.

While registered, the state shown is *derived* (see `online_state`): the circuit
breaker open wins (DEGRADED_NET), then a quarantine (QUARANTINED), then a claim
backoff (BACKOFF), then what the work pipeline does (IDLE, CLAIM, PROCESS, REPORT,
reported by the scheduler). The moves between the four work states are frequent
and logged at DEBUG; every other move at INFO.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping

from bot.errors import InvalidTransition
from bot.state import BotState

log = logging.getLogger(__name__)

HISTORY_KEPT = 1000  # moves remembered for tests and diagnostics; older ones go

S = BotState

WORK_STATES: frozenset[BotState] = frozenset({S.IDLE, S.CLAIM, S.PROCESS, S.REPORT})
FINAL_STATES: frozenset[BotState] = frozenset({S.SHUTDOWN, S.SAFE_HALT})
# The states of a registered bot that still takes part (BACKOFF here: a claim backoff).
ONLINE_STATES: frozenset[BotState] = WORK_STATES | {S.BACKOFF, S.QUARANTINED, S.DEGRADED_NET}
# Leaving for good: a stop (drain) or an unsafe condition, from any online state.
_LEAVE = frozenset({S.REGISTER, S.DRAINING, S.SAFE_HALT})

TRANSITIONS: Mapping[BotState, frozenset[BotState]] = {
    # Settings, identity, plugins and outbox checked; a stop before registering ends here.
    S.BOOTSTRAP: frozenset({S.REGISTER, S.SHUTDOWN, S.SAFE_HALT}),
    # One attempt: accepted, failed for now (BACKOFF), refused for good (SAFE_HALT), or a
    # drain that began while re-registering with work held.
    S.REGISTER: frozenset({S.SYNC, S.BACKOFF, S.DRAINING, S.SAFE_HALT}),
    # Waiting to register again, or (online) to claim again after the coordinator shed
    # load or failed: the wait ends in what the pipeline does meanwhile (never CLAIM:
    # the claim loop is the one waiting).
    S.BACKOFF: frozenset(
        {S.REGISTER, S.IDLE, S.PROCESS, S.REPORT, S.QUARANTINED, S.DEGRADED_NET}
        | {S.DRAINING, S.SHUTDOWN, S.SAFE_HALT}
    ),
    # Assignment applied, outbox flushed: on to whatever the bot is in now (a claim held
    # open across a re-registration shows as CLAIM).
    S.SYNC: frozenset(ONLINE_STATES | {S.DRAINING, S.SAFE_HALT}),
    # The work pipeline: IDLE -> CLAIM -> PROCESS -> REPORT -> ... (see `Scheduler.activity`).
    S.IDLE: frozenset({S.CLAIM, S.BACKOFF, S.DEGRADED_NET, S.QUARANTINED} | _LEAVE),
    S.CLAIM: frozenset({S.IDLE, S.PROCESS, S.DEGRADED_NET, S.QUARANTINED} | _LEAVE),
    S.PROCESS: frozenset({S.REPORT, S.BACKOFF, S.DEGRADED_NET, S.QUARANTINED} | _LEAVE),
    S.REPORT: frozenset(
        {S.IDLE, S.CLAIM, S.PROCESS, S.BACKOFF, S.DEGRADED_NET, S.QUARANTINED} | _LEAVE
    ),
    # The circuit is open: back only through SYNC, once the coordinator answers a probe.
    S.DEGRADED_NET: frozenset({S.SYNC} | _LEAVE),
    # Released: back to what the pipeline does, or to its claim backoff (never CLAIM: a
    # quarantine gives up the claim on its way).
    S.QUARANTINED: frozenset({S.IDLE, S.PROCESS, S.REPORT, S.BACKOFF, S.DEGRADED_NET} | _LEAVE),
    S.DRAINING: frozenset({S.SHUTDOWN, S.SAFE_HALT}),
    S.SHUTDOWN: frozenset(),
    S.SAFE_HALT: frozenset(),
}


def online_state(
    activity: BotState, *, circuit_open: bool, quarantined: bool, backing_off: bool
) -> BotState:
    """The state a registered bot shows: the most pressing condition, else its activity."""
    if circuit_open:
        return S.DEGRADED_NET
    if quarantined:
        return S.QUARANTINED
    if backing_off:
        return S.BACKOFF
    return activity


def transitions(
    table: Mapping[BotState, frozenset[BotState]] = TRANSITIONS,
) -> list[tuple[BotState, BotState]]:
    """Every allowed move as (source, target), in a stable order."""
    return [(source, target) for source in table for target in sorted(table[source], key=_order)]


def _order(state: BotState) -> int:
    return list(BotState).index(state)


Listener = Callable[[BotState, BotState, str], None]


class Lifecycle:
    def __init__(
        self,
        table: Mapping[BotState, frozenset[BotState]] = TRANSITIONS,
        initial: BotState = S.BOOTSTRAP,
    ) -> None:
        self._table = table
        self._state = initial
        self._listeners: list[Listener] = []
        # Made when someone waits (`wait_for`), set and dropped by the next move: a busy
        # bot moves a few times per job and nobody waits, so most moves make no event.
        self._changed: asyncio.Event | None = None
        self.history: list[BotState] = [initial]  # the latest moves (at most 2 * HISTORY_KEPT)

    @property
    def state(self) -> BotState:
        return self._state

    @property
    def working(self) -> bool:
        return self._state in WORK_STATES

    @property
    def final(self) -> bool:
        return self._state in FINAL_STATES

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def can_move(self, target: BotState) -> bool:
        return target == self._state or target in self._table.get(self._state, frozenset())

    def move(self, target: BotState, reason: str = "") -> None:
        """Move to `target` (staying put is no move); raises `InvalidTransition` if not allowed."""
        source = self._state
        if target is source:
            return
        if target not in self._table.get(source, ()):
            raise InvalidTransition(
                f"no move from {source.name} to {target.name}" + (f" ({reason})" if reason else "")
            )
        self._state = target
        self.history.append(target)
        if len(self.history) > 2 * HISTORY_KEPT:
            del self.history[:HISTORY_KEPT]  # a busy bot moves a few times per job
        quiet = source in WORK_STATES and target in WORK_STATES
        level = logging.DEBUG if quiet else logging.INFO
        if log.isEnabledFor(level):  # the quiet moves' arguments cost more than the check
            log.log(
                level,
                "state %s -> %s%s",
                source.name,
                target.name,
                f" ({reason})" if reason else "",
            )
        for listener in self._listeners:
            listener(source, target, reason)
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    async def wait_for(self, states: Iterable[BotState]) -> BotState:
        """Wait until the state is one of `states` (tests and supervisors)."""
        wanted = frozenset(states)
        while self._state not in wanted:
            if self._changed is None:
                self._changed = asyncio.Event()
            await self._changed.wait()
        return self._state
