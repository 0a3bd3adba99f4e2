"""A bot that has a session: its online parts, built at once, and how they answer each other.

The scheduler and the heartbeat call back here (`SchedulerHooks`, `HeartbeatHandler`);
the state shown is derived (`bot.agent.lifecycle.online_state`): DEGRADED_NET while the
circuit is open, QUARANTINED, BACKOFF while claims wait, else what the pipeline does.
Registration and the shutdown reach these parts through `bot.parts.OnlineParts`.
"""

from __future__ import annotations

import logging
import random

from bot.agent import hints
from bot.agent.lifecycle import ONLINE_STATES, Lifecycle, online_state
from bot.agent.quarantine import Quarantine
from bot.agent.registration import Registrar, Registration
from bot.agent.shutdown import (
    end_before_online,
    ending_for,
    halt_code,
    shut_down,
    stopped_before_registering,
)
from bot.agent.stops import StopRequests, TaskEnds
from bot.agent.supervisor import Supervisor
from bot.agent.watchdog import LoopLag, Watchdog
from bot.errors import ConflictError, CoordinatorError, OutboxError, StateDirError, TlsError
from bot.identity import IdentityStore
from bot.jobs import Outcome, Registry
from bot.link.circuit import BreakerApi, Circuit, CircuitBreaker
from bot.link.heartbeat import Heartbeat
from bot.link.http import Api
from bot.link.session import Session
from bot.logging_setup import LogContext
from bot.reports.outbox import Outbox
from bot.settings import Settings
from bot.state import BotState, Job
from bot.system.host import HostFacts, ProcessLoad
from bot.waiting import sleep_or
from bot.work.scheduler import Scheduler
from botfleet.clock import Clock
from botfleet.protocol import messages as m

log = logging.getLogger(__name__)

S = BotState
# Moves the coordinator hears of at once (its drain/quarantine/release commands wait for them).
_TELL_AT_ONCE = frozenset({S.QUARANTINED, S.DRAINING})


class Online:
    def __init__(
        self,
        *,
        settings: Settings,
        clock: Clock,
        rng: random.Random,
        host: HostFacts,
        lifecycle: Lifecycle,
        stops: StopRequests,
        outbox: Outbox,
        identity: IdentityStore,
        quarantine: Quarantine,
        circuit: CircuitBreaker,
        watchdog: Watchdog,
        loop_lag: LoopLag,
        supervisor: Supervisor,
        log_context: LogContext,
        registry: Registry,
        api: Api,
        session: Session,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.lifecycle = lifecycle
        self.stops = stops
        self.outbox = outbox
        self.identity = identity
        self.quarantine = quarantine
        self.circuit = circuit
        self.watchdog = watchdog
        self.loop_lag = loop_lag
        self.supervisor = supervisor
        self.log_context = log_context
        self.session = session
        self.ends = TaskEnds()
        # Every call counts for the circuit; a certificate that fails verification halts.
        self.api: Api = BreakerApi(api, circuit, on_untrusted=self._untrusted)
        self._backoff_reason: str | None = None  # claims wait (BACKOFF)
        # The parts get `self` as their hooks; they call back only once they run.
        self.scheduler = Scheduler(
            api=self.api,
            registry=registry,
            session=session,
            outbox=outbox,
            clock=clock,
            settings=settings,
            rng=rng,
            hooks=self,
            watchdog=watchdog,
        )
        self.heartbeat = Heartbeat(
            api=self.api,
            session=session,
            running=self.scheduler.running,
            lifecycle=lifecycle,
            load=ProcessLoad(clock, host.cpu_cores),
            handler=self,
            clock=clock,
            settings=settings,
            rng=rng,
            breaker=circuit,
            unreported=self.scheduler.reporting.unreported,
            held=self.scheduler.held.ids,
        )
        registrar = Registrar(self.api, session, settings, host, lifecycle, clock, rng)
        self.registration = Registration(self, stops, registrar)
        lifecycle.subscribe(self._on_move)
        circuit.subscribe(self._on_circuit)
        loop_lag.subscribe(self._stalled)

    async def run(self) -> int:
        """Register, run the side tasks until a stop or a halt, then end; the exit code."""
        stops = self.stops
        try:
            registered = await self.registration.first()
        except CoordinatorError as exc:
            refused = hints.cannot_go_on(self.settings, exc)
            return end_before_online(self.lifecycle, stops, halt_code(refused), refused)
        if not registered:
            return stopped_before_registering(self.lifecycle, stops)
        if stops.unsafe is None:
            self._start_tasks()
            failed = self.supervisor.failed
            await sleep_or(self.clock, None, stops.stop, stops.halting, failed)
        if self.supervisor.failure is not None:
            name, error = self.supervisor.failure
            stops.halt(hints.crashed(name, error))
        return await shut_down(self, stops, self.ends, ending_for(stops, self.settings))

    def _start_tasks(self) -> None:
        start, scheduler, ends = self.supervisor.start, self.scheduler, self.ends
        start("heartbeat", self.heartbeat.run(ends.rest))
        start("claim", scheduler.claim_loop(ends.claims))
        start("hold", scheduler.hold_loop(ends.claims))
        start("report", scheduler.reporting.report_loop(ends.reports))
        start("outbox", scheduler.reporting.outbox_loop(ends.rest))
        start("progress", scheduler.progress_loop(ends.rest))
        start("logs", scheduler.log_loop(ends.rest))
        start("watchdog", self.watchdog.run(ends.rest))
        start("loop-lag", self.loop_lag.run(ends.rest))
        start("token", self.registration.token_timer(ends.rest))

    # ------------------------------------------------------------ the state shown

    def online_state(self, activity: BotState | None = None) -> BotState:
        """The online state the conditions call for, the pipeline doing `activity` (None:
        what the scheduler does now)."""
        return online_state(
            self.scheduler.activity() if activity is None else activity,
            circuit_open=self.circuit.is_open,
            quarantined=self.quarantine.active,
            backing_off=self._backoff_reason is not None,
        )

    def _settle(self, reason: str = "", activity: BotState | None = None) -> None:
        """Show the online state the conditions call for (no move outside the online states)."""
        state = self.lifecycle.state
        if self.registration.registering or state not in ONLINE_STATES:
            return
        if state is S.DEGRADED_NET:
            return  # left only through SYNC, once a heartbeat gets through (on_heartbeat)
        self.lifecycle.move(self.online_state(activity), reason)

    def _on_move(self, source: BotState, target: BotState, reason: str) -> None:
        # A change of phase (draining, quarantined, released) is heard at once; other
        # moves wait for the next regular heartbeat.
        if source in _TELL_AT_ONCE or target in _TELL_AT_ONCE:
            self.heartbeat.beat_now.set()

    def _on_circuit(self, previous: Circuit, state: Circuit, reason: str) -> None:
        if state is Circuit.OPEN and previous is Circuit.CLOSED:
            self._settle(f"the coordinator is unreachable: {reason}")
            self.heartbeat.beat_now.set()  # the probe starts now, not at the next interval
        elif state is Circuit.OPEN:
            self._settle(f"the coordinator is unreachable: {reason}")
        elif state is Circuit.CLOSED:
            self.heartbeat.beat_now.set()  # a heartbeat leads the way back through SYNC

    def _untrusted(self, error: TlsError) -> None:
        # A registration that fails this way ends the bot itself (`run`, `renew`).
        if not self.registration.registering:
            self.stops.halt(hints.untrusted(error))

    def _stalled(self, lag_s: float) -> None:
        running = ", ".join(f"{e.job.id} ({e.job.op})" for e in self.scheduler.running)
        log.warning(
            "watchdog: the event loop stalled for %.1f s (something blocked it; running: %s); "
            "sending a heartbeat now",
            lag_s,
            running or "no job",
        )
        self.heartbeat.beat_now.set()

    # ------------------------------------------------------------ the scheduler's hooks

    def may_claim(self) -> bool:
        return self.lifecycle.working and self.stops.may_work()

    def activity_changed(self, activity: BotState) -> None:
        self._settle(activity=activity)  # the scheduler's activity, just worked out

    def backing_off(self, reason: str | None) -> None:
        self._backoff_reason = reason
        self._settle(reason or "")

    def reachable(self) -> bool:
        return not self.circuit.is_open

    def job_finished(self, job: Job, outcome: Outcome) -> None:
        if self.quarantine.note_job(job.op, outcome.crash):
            self._quarantined(self.quarantine.reason or "")

    def threads_exhausted(self, abandoned: int) -> None:
        self.stops.request_restart(
            f"{abandoned} abandoned handler threads still run (their handlers ignored "
            "cancellation): draining for a restart"
        )

    def fatal(self, error: OutboxError) -> None:
        self.stops.halt(hints.outbox(self.settings, error))

    async def renew(self, generation: int) -> bool:
        renewed = await self.registration.renew(generation)
        if renewed and len(self.scheduler.held):
            # The coordinator may have given this bot up meanwhile and queued its held
            # jobs again: give them all back, those no longer ours answer `conflict`.
            await self.scheduler.release_held("registered again")
        return renewed

    # ------------------------------------------------------------ the heartbeat's hooks

    def check_health(self) -> None:
        """Can the bot still keep reports and its identity? If not, it halts."""
        if self.stops.unsafe is not None:
            return  # halting already
        try:
            self.outbox.check()
            self.identity.check(self.session.identity)
        except OutboxError as exc:
            self.fatal(exc)
        except StateDirError as exc:
            self.stops.halt(hints.identity(self.settings, exc))

    def replaced(self, error: ConflictError) -> None:
        self.stops.halt(hints.identity(self.settings, error))

    async def on_heartbeat(self, answer: m.HeartbeatResponse) -> None:
        if self.lifecycle.state is S.DEGRADED_NET:
            await self.registration.sync("the coordinator answers again")
        changes = self.session.apply_config(answer.config)
        if changes:
            log.info("config from the coordinator: %s", ", ".join(changes))
        if answer.assignment is not None and self.session.apply_assignment(answer.assignment):
            self.scheduler.apply_assignment()
        self.scheduler.running.note_leases(answer.extended)
        for job_id in answer.cancel:
            if not self.scheduler.cancel(job_id, "cancelled"):
                log.debug("cancel for job %s, which does not run here", job_id)
        if answer.command is not None:
            self._on_command(answer.command)

    def _on_command(self, command: str) -> None:
        if command == "drain":
            self.stops.request_drain("drain requested by the coordinator")
        elif command == "quarantine":
            if self.quarantine.enter("quarantined by the coordinator"):
                self._quarantined("quarantined by the coordinator")
        elif command == "release" and self.quarantine.release():
            self._settle("released by the coordinator")
            self.scheduler.wake.set()

    def _quarantined(self, reason: str) -> None:
        self._settle(reason)
        self.scheduler.abort_claim()  # a claim held open would still bring work
