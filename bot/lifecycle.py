"""The lifecycle: the allowed moves between `BotState`s as data, and the one object that moves.

A move not in `TRANSITIONS` raises `InvalidTransition`; every move is logged and
announced to listeners (the command line prints it, heartbeats send the state).
IDLE, CLAIM, PROCESS and REPORT are the *work* states: while the bot works, the
scheduler reports which of them describes it (`note_activity`), and these frequent
moves are logged at DEBUG; every other move at INFO.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping

from bot.errors import InvalidTransition
from bot.state import BotState

log = logging.getLogger(__name__)

S = BotState

WORK_STATES: frozenset[BotState] = frozenset({S.IDLE, S.CLAIM, S.PROCESS, S.REPORT})
FINAL_STATES: frozenset[BotState] = frozenset({S.SHUTDOWN, S.SAFE_HALT})
# Any state the bot can be in while registered and holding work.
_ONLINE = WORK_STATES | {S.DEGRADED_NET, S.QUARANTINED}


def _moves(*targets: Iterable[BotState] | BotState) -> frozenset[BotState]:
    out: set[BotState] = set()
    for target in targets:
        out.update([target] if isinstance(target, BotState) else target)
    return frozenset(out)


TRANSITIONS: Mapping[BotState, frozenset[BotState]] = {
    S.BOOTSTRAP: _moves(S.REGISTER, S.SHUTDOWN, S.SAFE_HALT),
    # Registering again while online may be interrupted by a stop: hence DRAINING.
    S.REGISTER: _moves(S.SYNC, S.BACKOFF, S.DRAINING, S.SHUTDOWN, S.SAFE_HALT),
    S.BACKOFF: _moves(S.REGISTER, S.DRAINING, S.SHUTDOWN, S.SAFE_HALT),
    S.SYNC: _moves(_ONLINE, S.REGISTER, S.DRAINING, S.SHUTDOWN, S.SAFE_HALT),
    # Work states move freely among themselves and out to every online state.
    **{
        state: _moves(_ONLINE - {state}, S.REGISTER, S.DRAINING, S.SAFE_HALT)
        for state in WORK_STATES
    },
    S.DEGRADED_NET: _moves(WORK_STATES, S.QUARANTINED, S.REGISTER, S.DRAINING, S.SAFE_HALT),
    S.QUARANTINED: _moves(WORK_STATES, S.DEGRADED_NET, S.REGISTER, S.DRAINING, S.SAFE_HALT),
    S.DRAINING: _moves(S.SHUTDOWN, S.SAFE_HALT),
    S.SHUTDOWN: frozenset(),
    S.SAFE_HALT: frozenset(),
}

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
        self._changed = asyncio.Event()
        self.history: list[BotState] = [initial]

    @property
    def state(self) -> BotState:
        return self._state

    @property
    def working(self) -> bool:
        return self._state in WORK_STATES

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def can_move(self, target: BotState) -> bool:
        return target == self._state or target in self._table.get(self._state, frozenset())

    def move(self, target: BotState, reason: str = "") -> None:
        """Move to `target` (staying put is no move); raises `InvalidTransition` if not allowed."""
        source = self._state
        if target == source:
            return
        if not self.can_move(target):
            raise InvalidTransition(f"no move from {source.name} to {target.name}")
        self._state = target
        self.history.append(target)
        quiet = source in WORK_STATES and target in WORK_STATES
        log.log(
            logging.DEBUG if quiet else logging.INFO,
            "state %s -> %s%s",
            source.name,
            target.name,
            f" ({reason})" if reason else "",
        )
        for listener in self._listeners:
            listener(source, target, reason)
        self._changed.set()
        self._changed = asyncio.Event()

    def note_activity(self, activity: BotState) -> None:
        """While working, show what the work pipeline does now; in other states, nothing."""
        if self.working and activity in WORK_STATES:
            self.move(activity)

    async def wait_for(self, states: Iterable[BotState]) -> BotState:
        """Wait until the state is one of `states` (tests and supervisors)."""
        wanted = frozenset(states)
        while self._state not in wanted:
            await self._changed.wait()
        return self._state
