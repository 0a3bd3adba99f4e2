"""How a bot ends: one sequence (`shut_down`), driven by an `Ending` the stop requests
call for: a drain (exit 0), a hard stop (a second request, at any of the drain's waits:
exit 1), a halt (going on is unsafe: exit 3; revoked by an operator: exit 5) or a drain
for a restart (too many abandoned handler threads: exit 4). No acknowledged report is
lost.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from bot.agent.lifecycle import Lifecycle
from bot.agent.parts import OnlineParts
from bot.agent.stops import StopRequests, TaskEnds
from bot.errors import CoordinatorError, OutboxError, RevokedHalt, UnsafeError
from bot.settings import Settings
from bot.state import BotState
from botfleet.protocol import messages as m

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_STOPPED_HARD = 1
EXIT_BAD_SETTINGS = 2
EXIT_SAFE_HALT = 3
EXIT_RESTART = 4  # drained; only a new process is rid of the abandoned handler threads
EXIT_REVOKED = 5  # halted: an operator revoked the bot; a restart would be refused again


def halt_code(error: UnsafeError) -> int:
    return EXIT_REVOKED if isinstance(error, RevokedHalt) else EXIT_SAFE_HALT


S = BotState


@dataclass(frozen=True, slots=True)
class Ending:
    """How the bot ends: what it shows meanwhile, how its jobs end, whether it says goodbye."""

    code: int
    reason: str  # of the final move
    shown: BotState | None  # the state shown while ending (None: left as it is)
    why: str  # of the move to `shown`
    # Running jobs may finish this long, then are cancelled and reported; None: they are
    # abandoned at once, with no report.
    grace_s: float | None
    abandon_wait_s: float | None  # how long abandoned jobs get to end (None: all it takes)
    deliver: bool  # the report loop delivers what finished before it ends
    flush_outbox: bool  # try the outbox once more before leaving
    farewell: bool  # a last heartbeat, then `deregister`

    def hardened(self) -> Ending:
        """What is left of this ending once a hard stop is asked for."""
        return dataclasses.replace(
            self,
            code=EXIT_STOPPED_HARD,
            reason="stopped hard",
            grace_s=None,
            abandon_wait_s=None,
            deliver=False,
            flush_outbox=False,
            farewell=False,
        )


def ending_for(stops: StopRequests, settings: Settings) -> Ending:
    """A halt, unless a drain began first (a halt during a drain ends that drain); a
    drain for a restart exits 4."""
    if stops.unsafe is not None and not stops.stop.is_set():
        # A revoked bot's token is dead: its reports would be refused, and a goodbye too.
        trusted = not isinstance(stops.unsafe, RevokedHalt)
        return Ending(
            code=halt_code(stops.unsafe),
            reason=stops.unsafe.why,
            shown=S.SAFE_HALT,
            why=stops.unsafe.why,
            grace_s=None,
            abandon_wait_s=settings.cancel_wait_s,
            deliver=trusted,
            flush_outbox=False,
            farewell=trusted,
        )
    return Ending(
        code=EXIT_RESTART if stops.restart else EXIT_OK,
        reason="drained for a restart" if stops.restart else "drained",
        shown=S.DRAINING,
        why=stops.reason,
        grace_s=settings.drain_grace_s,
        abandon_wait_s=settings.cancel_wait_s,
        deliver=True,
        flush_outbox=True,
        farewell=True,
    )


async def shut_down(parts: OnlineParts, stops: StopRequests, ends: TaskEnds, ending: Ending) -> int:
    """End a bot that got online; its exit code. `stops.hard` hardens the ending at any wait."""
    scheduler, supervisor, hard = parts.scheduler, parts.supervisor, stops.hard

    # 1. Show that the bot leaves: the coordinator stops handing it work at once.
    if ending.shown is not None:
        parts.lifecycle.move(ending.shown, ending.why)

    # 2. No more claims. A claim held open by long-poll is given up when its jobs would be
    #    abandoned anyway, or when `deregister` will hand back what it got; else it ends.
    ends.claims.set()
    if ending.grace_s is None or parts.session.has(m.FEATURE_DEREGISTER):
        await supervisor.cancel("claim")
    elif not await supervisor.join("claim", hard):
        ending = ending.hardened()

    # 2b. Prefetched jobs not started go back to the queue at once, uncharged (they never
    #     start while the bot leaves); a hard stop or a revocation leaves them to their
    #     leases, as it does running jobs.
    if ending.farewell and not hard.is_set() and len(scheduler.held):
        released = await scheduler.release_held(ending.reason)
        log.info("%d prefetched job(s) not started given back to the queue", released)

    # 3. Running jobs finish within the grace; then they are cancelled and reported failed
    #    (retryable); those that ignore it, and all of them on a halt, are abandoned.
    if ending.grace_s is not None and not await scheduler.wait_jobs(hard, ending.grace_s):
        if not hard.is_set():
            await _cancel_running(parts, stops, ending.grace_s, ending.abandon_wait_s)
        if hard.is_set():
            ending = ending.hardened()
    if ending.grace_s is None:
        await scheduler.abandon_jobs(wait_s=ending.abandon_wait_s)

    # 4. The report loop delivers what finished, then ends; a hard stop does not wait.
    ends.reports.set()
    if ending.deliver and not await supervisor.join("report", hard):
        ending = ending.hardened()

    # 5. The side tasks end (heartbeat, outbox, progress, watchdogs, token).
    ends.rest.set()
    await supervisor.cancel_all()

    # 6. Whatever is not delivered is kept for the next start; a drain tries once more.
    scheduler.reporting.keep_pending()
    if ending.flush_outbox and not parts.circuit.is_open and len(parts.outbox):
        try:
            await scheduler.reporter.flush_outbox()
        except OutboxError as exc:
            log.error("outbox: %s", exc)
    if len(parts.outbox):
        log.warning("outbox: %d report(s) kept for the next start", len(parts.outbox))
    for item in scheduler.reporting.unsaved:
        log.error("report lost (not delivered, not kept): %s", item)

    # 7. The final state; the coordinator hears it in a last heartbeat, then forgets the bot.
    unsafe = stops.unsafe
    parts.lifecycle.move(
        S.SAFE_HALT if unsafe else S.SHUTDOWN, unsafe.why if unsafe else ending.reason
    )
    if ending.farewell and not isinstance(unsafe, RevokedHalt):
        await _farewell(parts)
    if unsafe is not None:
        log.critical("SAFE_HALT: %s", unsafe)
        return halt_code(unsafe)
    return ending.code


async def _cancel_running(
    parts: OnlineParts, stops: StopRequests, grace_s: float, wait_s: float | None
) -> None:
    """The grace ran out: cancel what runs (reported failed, retryable), give it `wait_s`
    to end, and leave a handler that ignores its cancellation to its lease."""
    scheduler = parts.scheduler
    cancelled = scheduler.cancel_all(
        f"the bot shut down before the job ended (drain grace of {grace_s:g} s)", retryable=True
    )
    log.warning(
        "drain grace of %g s ran out: %d job(s) cancelled, reported failed (retryable)",
        grace_s,
        cancelled,
    )
    if await scheduler.wait_jobs(stops.hard, wait_s) or stops.hard.is_set():
        return
    left = await scheduler.abandon_jobs(wait_s=wait_s)
    log.warning("watchdog: %d job(s) ignored their cancellation; abandoned", left)


async def _farewell(parts: OnlineParts) -> None:
    """A last heartbeat (the coordinator shows the final state), then `deregister`."""
    session = parts.session
    if session.bot_id is None or parts.circuit.is_open:
        return
    try:
        await parts.heartbeat.beat()
    except CoordinatorError as exc:
        log.debug("last heartbeat failed: %s", exc)
    if not session.has(m.FEATURE_DEREGISTER):
        return
    try:
        await parts.api.deregister(
            session.bot_id, m.DeregisterRequest(instance_id=session.instance_id)
        )
    except CoordinatorError as exc:
        log.warning("deregister failed (%s); the bot lease will run out", exc)
    else:
        log.info("deregistered")


def end_before_online(
    lifecycle: Lifecycle, stops: StopRequests, code: int, error: UnsafeError
) -> int:
    """A bot that cannot start (bad settings, unusable state folder, registration refused)."""
    stops.unsafe = stops.unsafe or error
    lifecycle.move(S.SAFE_HALT, error.why)
    log.critical("SAFE_HALT: %s", error)
    return code


def stopped_before_registering(lifecycle: Lifecycle, stops: StopRequests) -> int:
    lifecycle.move(S.SHUTDOWN, f"{stops.reason} before registering")
    return EXIT_OK
