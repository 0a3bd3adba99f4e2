"""The `Bot`: bootstraps, registers, syncs, then runs its named tasks until told to stop.

BOOTSTRAP (settings, identity, plugins, outbox, quarantine checked) -> REGISTER
and SYNC (`bot.registration`, which also registers again when it must) -> the
online states while the heartbeat, claim, report, outbox, progress, watchdog,
loop-lag and token tasks run under one `Supervisor`. Online, the state shown is
derived (`bot.lifecycle.online_state`): DEGRADED_NET while the circuit is open,
QUARANTINED, BACKOFF while claims wait, else what the pipeline does.

Stopping is an event, not a cancellation: the first stop request (signal, or the
coordinator's `drain`) drains (`bot.stopping`); a second one stops hard. SAFE_HALT
ends a bot that cannot go on safely: the outbox cannot keep reports, another
process took its identity, registration is refused, a task crashed.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import aiohttp

from bot import hints
from bot.api import Api
from bot.circuit import BreakerApi, Circuit, CircuitBreaker
from bot.connections import coordinator_client, metrics_endpoint
from bot.disk import Disk
from bot.errors import (
    ConflictError,
    CoordinatorError,
    OutboxError,
    SettingsError,
    StateDirError,
    UnsafeError,
)
from bot.heartbeat import Heartbeat
from bot.host import HostFacts, ProcessLoad
from bot.identity import IdentityStore, new_instance_id
from bot.jobs import Outcome, Registry, load_plugins
from bot.lifecycle import ONLINE_STATES, Lifecycle, online_state
from bot.logging_setup import LogContext, bot_context
from bot.outbox import Outbox
from bot.quarantine import Quarantine
from bot.registration import Registration
from bot.scheduler import Scheduler
from bot.session import Registrar, Session
from bot.settings import Settings
from bot.state import BotState, Job
from bot.stopping import (
    EXIT_BAD_SETTINGS,
    EXIT_OK,
    EXIT_SAFE_HALT,
    EXIT_STOPPED_HARD,
    Stopping,
)
from bot.supervisor import Supervisor
from bot.waiting import sleep_or
from bot.watchdog import LoopLag, Watchdog
from botfleet.clock import Clock, SystemClock
from botfleet.protocol import messages as m

__all__ = ["EXIT_BAD_SETTINGS", "EXIT_OK", "EXIT_SAFE_HALT", "EXIT_STOPPED_HARD", "Bot"]

log = logging.getLogger(__name__)

S = BotState
# Moves the coordinator hears of at once (its drain/quarantine/release commands wait for them).
_TELL_AT_ONCE = frozenset({S.QUARANTINED, S.DRAINING})


class Bot:
    def __init__(
        self,
        settings: Settings,
        *,
        registry: Registry | None = None,
        api: Api | None = None,
        http: aiohttp.ClientSession | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        host: HostFacts | None = None,
        disk: Disk | None = None,
        make_instance_id: Callable[[], str] = new_instance_id,
    ) -> None:
        """Nothing happens here; `run()` does the work. Pass `api` (a fake) or `http` (a
        session pointed at a test server) to choose how the bot reaches its coordinator."""
        self.settings = settings
        self.lifecycle = Lifecycle()
        self._registry = registry
        self._api = api
        self._http = http
        self.clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._host = host or HostFacts.detect()
        self._disk = disk or Disk()
        self._make_instance_id = make_instance_id
        self.outbox = Outbox(settings.state_dir, disk=self._disk)
        self.identity = IdentityStore(
            settings.state_dir, disk=self._disk, make_instance_id=make_instance_id
        )
        self.quarantine = Quarantine(
            settings.state_dir, disk=self._disk, crash_loop_limit=settings.crash_loop_limit
        )
        self.circuit = CircuitBreaker(settings.circuit_threshold, self._on_circuit)
        self.watchdog = Watchdog(self.clock, settings.watchdog_tick_s)
        self.loop_lag = LoopLag(settings.loop_lag_tick_s, settings.loop_lag_limit_s, self._stalled)
        self.supervisor = Supervisor()
        self.stopping = Stopping(self)
        self.registration = Registration(self)
        self._backoff_reason: str | None = None  # claims wait (BACKOFF)
        self.log_context = LogContext()  # what every log line of this bot carries (its id)
        # Set by run() once the parts exist.
        self.session: Session | None = None
        self.scheduler: Scheduler | None = None
        self.heartbeat: Heartbeat | None = None
        self.api: Api | None = None  # the coordinator, as every part calls it (circuit-counted)
        self.metrics_port: int | None = None  # where metrics are served, once they are

    @property
    def state(self) -> BotState:
        return self.lifecycle.state

    # ------------------------------------------------------------ stop requests

    def request_stop(self, reason: str = "stop requested") -> None:
        """First call: drain and shut down. Second call: stop hard. Safe before `run()`."""
        self.stopping.request_stop(reason)

    def request_drain(self, reason: str) -> None:
        self.stopping.request_drain(reason)

    def halt(self, error: UnsafeError) -> None:
        """Going on is unsafe: stop claiming and running, keep what was kept, exit non-zero."""
        self.stopping.halt(error)

    # ------------------------------------------------------------ run

    async def run(self) -> int:
        """Run until stopped; the exit code (0 clean, 1 hard stop, 2 bad settings, 3 halt)."""
        self.log_context = bot_context()
        try:
            session = self._bootstrap()
        except SettingsError as exc:
            return self.stopping.halt_now(EXIT_BAD_SETTINGS, hints.bad_setting(exc))
        except (StateDirError, OutboxError) as exc:
            return self.stopping.halt_now(EXIT_SAFE_HALT, hints.state_dir(self.settings, exc))
        try:
            async with (
                coordinator_client(
                    self.settings, self.clock, api=self._api, http=self._http
                ) as api,
                metrics_endpoint(self, self.settings.metrics_port) as metrics_port,
            ):
                self.metrics_port = metrics_port
                return await self._run_online(api, session)
        except SettingsError as exc:
            return self.stopping.halt_now(EXIT_BAD_SETTINGS, hints.bad_setting(exc))
        finally:
            self.outbox.close()

    def _bootstrap(self) -> Session:
        settings, host = self.settings, self._host
        identity = self.identity.rotate_instance_id(
            self.identity.load(settings.bot_name, host.hostname, host.platform)
        )
        registry = self._registry
        if registry is None:
            registry = load_plugins(Registry(), settings.plugins)
        if not len(registry):
            raise SettingsError("BOT_PLUGINS", "no job handler loaded: nothing to do")
        self._registry = registry
        self.outbox.open()
        self.quarantine.load()
        log.info(
            "bot %s (key %s…, instance %s) handles %s",
            identity.name,
            identity.bot_key[:12],
            identity.instance_id,
            ", ".join(registry.operations()),
        )
        return Session.start(settings, identity, registry.operations())

    def _assemble(self, raw_api: Api, session: Session) -> Registrar:
        """Build the online parts around `session`; the registrar is the registration's."""
        assert self._registry is not None
        api = BreakerApi(raw_api, self.circuit)
        self.api = api
        self.session = session
        self.scheduler = Scheduler(
            api=api,
            registry=self._registry,
            session=session,
            outbox=self.outbox,
            clock=self.clock,
            settings=self.settings,
            rng=self._rng,
            hooks=self,
            watchdog=self.watchdog,
        )
        self.heartbeat = Heartbeat(
            api=api,
            session=session,
            running=self.scheduler.running,
            lifecycle=self.lifecycle,
            load=ProcessLoad(self.clock, self._host.cpu_cores),
            handler=self,
            clock=self.clock,
            settings=self.settings,
            rng=self._rng,
            breaker=self.circuit,
            unreported=self.scheduler.reporting.unreported,
        )
        self.lifecycle.subscribe(self._on_move)
        return Registrar(
            api, session, self.settings, self._host, self.lifecycle, self.clock, self._rng
        )

    def _on_move(self, source: BotState, target: BotState, reason: str) -> None:
        # The coordinator hears of a change of phase (draining, quarantined, released) at
        # once; other moves wait for the next regular heartbeat.
        if self.heartbeat is not None and (source in _TELL_AT_ONCE or target in _TELL_AT_ONCE):
            self.heartbeat.beat_now.set()

    async def _run_online(self, api: Api, session: Session) -> int:
        registrar = self._assemble(api, session)
        stopping = self.stopping
        try:
            registered = await self.registration.first(registrar)
        except CoordinatorError as exc:
            return stopping.halt_now(EXIT_SAFE_HALT, hints.refused(self.settings, exc))
        if not registered:
            return stopping.stopped_before_registering()
        if stopping.unsafe is None:
            self._start_tasks()
            failed = self.supervisor.failed
            await sleep_or(self.clock, None, stopping.stop, stopping.halting, failed)
        if self.supervisor.failure is not None:
            name, error = self.supervisor.failure
            self.halt(hints.crashed(name, error))
        return await stopping.finish()

    def _start_tasks(self) -> None:
        assert self.scheduler is not None and self.heartbeat is not None
        start, scheduler, stopping = self.supervisor.start, self.scheduler, self.stopping
        start("heartbeat", self.heartbeat.run(stopping.end))
        start("claim", scheduler.claim_loop(stopping.claims_end))
        start("report", scheduler.reporting.report_loop(stopping.reports_end))
        start("outbox", scheduler.reporting.outbox_loop(stopping.end))
        start("progress", scheduler.progress_loop(stopping.end))
        start("watchdog", self.watchdog.run(stopping.end))
        start("loop-lag", self.loop_lag.run(stopping.end))
        start("token", self.registration.token_timer(stopping.end))

    def online_state(self, activity: BotState | None = None) -> BotState:
        """The online state the conditions call for (`bot.lifecycle.online_state`), the
        pipeline doing `activity` (None: what the scheduler does now)."""
        assert self.scheduler is not None
        return online_state(
            self.scheduler.activity() if activity is None else activity,
            circuit_open=self.circuit.is_open,
            quarantined=self.quarantine.active,
            backing_off=self._backoff_reason is not None,
        )

    def _settle(self, reason: str = "", activity: BotState | None = None) -> None:
        """Show the online state the conditions call for (no move outside the online states)."""
        state = self.lifecycle.state
        if self.registration.registering or state not in ONLINE_STATES or self.scheduler is None:
            return
        if state is S.DEGRADED_NET:
            return  # left only through SYNC, once a heartbeat gets through (on_heartbeat)
        self.lifecycle.move(self.online_state(activity), reason)

    # ------------------------------------------------------------ hooks (scheduler, heartbeat)

    def may_claim(self) -> bool:
        return self.lifecycle.working and self.stopping.may_work()

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

    def fatal(self, error: OutboxError) -> None:
        self.halt(hints.outbox(self.settings, error))

    def check_health(self) -> None:
        """Can the bot still keep reports and its identity? If not, it halts."""
        assert self.session is not None
        if self.stopping.unsafe is not None:
            return  # halting already
        try:
            self.outbox.check()
            self.identity.check(self.session.identity)
        except OutboxError as exc:
            self.fatal(exc)
        except StateDirError as exc:
            self.halt(hints.identity(self.settings, exc))

    def replaced(self, error: ConflictError) -> None:
        self.halt(hints.identity(self.settings, error))

    def _quarantined(self, reason: str) -> None:
        self._settle(reason)
        if self.scheduler is not None:
            # A claim held open would still bring work: give it up.
            self.scheduler.abort_claim()

    def _on_circuit(self, previous: Circuit, state: Circuit, reason: str) -> None:
        if state is Circuit.OPEN:
            self._settle(f"the coordinator is unreachable: {reason}")
        elif state is Circuit.CLOSED and self.heartbeat is not None:
            self.heartbeat.beat_now.set()  # a heartbeat leads the way back through SYNC

    def _stalled(self, lag_s: float) -> None:
        entries = list(self.scheduler.running) if self.scheduler is not None else []
        running = ", ".join(f"{entry.job.id} ({entry.job.op})" for entry in entries)
        log.warning(
            "watchdog: the event loop stalled for %.1f s (something blocked it; running: %s); "
            "sending a heartbeat now",
            lag_s,
            running or "no job",
        )
        if self.heartbeat is not None:
            self.heartbeat.beat_now.set()

    async def renew(self, generation: int) -> bool:
        return await self.registration.renew(generation)

    async def on_heartbeat(self, answer: m.HeartbeatResponse) -> None:
        assert self.scheduler is not None and self.session is not None
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
            self.request_drain("drain requested by the coordinator")
        elif command == "quarantine":
            if self.quarantine.enter("quarantined by the coordinator"):
                self._quarantined("quarantined by the coordinator")
        elif command == "release" and self.quarantine.release():
            self._settle("released by the coordinator")
            if self.scheduler is not None:
                self.scheduler.wake.set()
