"""The `Bot`: bootstraps, registers, syncs, then runs its named tasks until told to stop.

BOOTSTRAP (settings, identity, plugins, outbox checked) -> REGISTER (retried with
backoff) -> SYNC (assignment/config applied, outbox flushed) -> the work states
(IDLE, CLAIM, PROCESS, REPORT) while the heartbeat, claim, report, outbox and
progress tasks run under one `Supervisor`. Stopping is an event, not a
cancellation: the first stop request (signal, or the coordinator's `drain`)
drains - no more claims, running jobs finish, reports are delivered or kept,
the bot deregisters - and ends in SHUTDOWN; a second request stops hard, still
keeping every finished report in the outbox. SAFE_HALT ends a bot that cannot
go on safely (the outbox cannot keep reports, registration is refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable

import aiohttp

from bot.api import Api, HttpApi
from bot.disk import Disk
from bot.errors import CoordinatorError, OutboxError, SettingsError, StateDirError
from bot.heartbeat import Heartbeat
from bot.host import HostFacts, ProcessLoad
from bot.identity import IdentityStore, new_instance_id
from bot.jobs import Registry, load_plugins
from bot.lifecycle import FINAL_STATES, WORK_STATES, Lifecycle
from bot.logging_setup import LogContext, bot_context
from bot.metrics import MetricsServer
from bot.outbox import Outbox
from bot.scheduler import Scheduler
from bot.session import Registrar, Session
from bot.settings import Settings
from bot.state import BotState
from bot.supervisor import Supervisor
from bot.waiting import sleep_or
from botfleet.clock import Clock, SystemClock
from botfleet.protocol import messages as m

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_STOPPED_HARD = 1
EXIT_BAD_SETTINGS = 2
EXIT_SAFE_HALT = 3

S = BotState


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
        self._clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._host = host or HostFacts.detect()
        self._disk = disk or Disk()
        self._make_instance_id = make_instance_id
        self.outbox = Outbox(settings.state_dir, disk=self._disk)
        self.supervisor = Supervisor()
        self._stop = asyncio.Event()  # drain: no more claims, finish, leave
        self._hard = asyncio.Event()  # stop now
        self._claims_end = asyncio.Event()
        self._reports_end = asyncio.Event()
        self._end = asyncio.Event()
        self._renew_lock = asyncio.Lock()
        self._stop_reason = ""
        self._unsafe: str | None = None  # why the bot must end in SAFE_HALT
        self._quarantined = False
        self._log_context = LogContext()
        # Set by run() once the parts exist.
        self.session: Session | None = None
        self.scheduler: Scheduler | None = None
        self.heartbeat: Heartbeat | None = None
        self._registrar: Registrar | None = None
        self._connected: Api | None = None
        self.metrics_port: int | None = None  # where metrics are served, once they are

    @property
    def state(self) -> BotState:
        return self.lifecycle.state

    # ------------------------------------------------------------ stop requests

    def request_stop(self, reason: str = "stop requested") -> None:
        """First call: drain and shut down. Second call: stop hard. Safe before `run()`."""
        if self._stop.is_set():
            if not self._hard.is_set():
                log.warning("second stop request (%s): stopping hard", reason)
                self._hard.set()
            return
        self.request_drain(reason)

    def request_drain(self, reason: str) -> None:
        if not self._stop.is_set():
            log.info("stopping: %s", reason)
            self._stop_reason = reason
            self._stop.set()

    # ------------------------------------------------------------ run

    async def run(self) -> int:
        """Run until stopped; the exit code (0 clean, 1 hard stop, 2 bad settings, 3 halt)."""
        self._log_context = bot_context()
        try:
            session = self._bootstrap()
        except SettingsError as exc:
            return self._halt(EXIT_BAD_SETTINGS, str(exc))
        except (StateDirError, OutboxError) as exc:
            return self._halt(EXIT_SAFE_HALT, str(exc))
        try:
            async with self._client() as api, self._metrics():
                return await self._run_online(api, session)
        except SettingsError as exc:
            return self._halt(EXIT_BAD_SETTINGS, str(exc))
        finally:
            self.outbox.close()

    def _bootstrap(self) -> Session:
        settings, host = self.settings, self._host
        store = IdentityStore(
            settings.state_dir, disk=self._disk, make_instance_id=self._make_instance_id
        )
        identity = store.rotate_instance_id(
            store.load(settings.bot_name, host.hostname, host.platform)
        )
        registry = self._registry
        if registry is None:
            registry = load_plugins(Registry(), settings.plugins)
        if not len(registry):
            raise SettingsError("BOT_PLUGINS", "no job handler loaded: nothing to do")
        self._registry = registry
        self.outbox.open()
        log.info(
            "bot %s (key %s…, instance %s) handles %s",
            identity.name,
            identity.bot_key[:12],
            identity.instance_id,
            ", ".join(registry.operations()),
        )
        return Session.start(settings, identity, registry.operations())

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[Api]:
        if self._api is not None:
            yield self._api
            return
        own = self._http is None
        http = self._http or aiohttp.ClientSession()
        try:
            yield HttpApi(
                http,
                self.settings.server_bases,
                timeout_s=self.settings.request_timeout_s,
                enroll_token=self.settings.enroll_token,
                now=self._clock.now,
            )
        finally:
            if own:
                await http.close()

    @contextlib.asynccontextmanager
    async def _metrics(self) -> AsyncIterator[None]:
        port = self.settings.metrics_port
        if port is None:
            yield
            return
        server = MetricsServer(self, port)
        try:
            await server.start()
        except OSError as exc:
            raise SettingsError("BOT_METRICS_PORT", f"cannot listen on {port}: {exc}") from exc
        self.metrics_port = server.port
        try:
            yield
        finally:
            await server.stop()

    def _assemble(self, api: Api, session: Session) -> None:
        assert self._registry is not None
        self._connected = api
        self.session = session
        self.scheduler = Scheduler(
            api=api,
            registry=self._registry,
            session=session,
            outbox=self.outbox,
            clock=self._clock,
            settings=self.settings,
            rng=self._rng,
            hooks=self,
        )
        self.heartbeat = Heartbeat(
            api=api,
            session=session,
            running=self.scheduler.running,
            lifecycle=self.lifecycle,
            load=ProcessLoad(self._clock, self._host.cpu_cores),
            handler=self,
            clock=self._clock,
            settings=self.settings,
            rng=self._rng,
        )
        self._registrar = Registrar(
            api, session, self.settings, self._host, self.lifecycle, self._clock, self._rng
        )
        self.lifecycle.subscribe(self._on_move)

    def _on_move(self, source: BotState, target: BotState, reason: str) -> None:
        # The coordinator hears of a change of phase (draining, quarantined…) at once;
        # the frequent moves between work states wait for the next regular heartbeat.
        if self.heartbeat is not None and target not in WORK_STATES:
            self.heartbeat.beat_now.set()

    async def _run_online(self, api: Api, session: Session) -> int:
        self._assemble(api, session)
        assert self._registrar is not None
        try:
            answer = await self._registrar.register(self._stop)
        except CoordinatorError as exc:
            return self._halt(EXIT_SAFE_HALT, f"registration refused: {exc}")
        if answer is None:
            self.lifecycle.move(S.SHUTDOWN, f"{self._stop_reason} before registering")
            return EXIT_OK
        await self._sync()
        self._start_tasks()
        await sleep_or(self._clock, None, self._stop, self.supervisor.failed)
        if self.supervisor.failure is not None and not self._stop.is_set():
            name, error = self.supervisor.failure
            self._unsafe = f"task {name} crashed: {error!r}"
            self.request_drain(self._unsafe)
        return await self._finish()

    def _start_tasks(self) -> None:
        assert self.scheduler is not None and self.heartbeat is not None
        start, scheduler = self.supervisor.start, self.scheduler
        start("heartbeat", self.heartbeat.run(self._end))
        start("claim", scheduler.claim_loop(self._claims_end))
        start("report", scheduler.report_loop(self._reports_end))
        start("outbox", scheduler.outbox_loop(self._end))
        start("progress", scheduler.progress_loop(self._end))

    async def _sync(self, announce: bool = True) -> None:
        """Apply what registration brought and deliver what the outbox kept."""
        assert self.scheduler is not None and self.session is not None
        if announce:
            self.lifecycle.move(S.SYNC)
        self._log_context.bot_id = self.session.bot_id
        self.scheduler.apply_assignment()
        if len(self.outbox):
            try:
                # Not scheduler.flush_outbox(): a 401 here must not re-enter renew().
                await self.scheduler.reporter.flush_outbox()
            except OutboxError as exc:
                self.fatal(exc)
        if announce:
            self._resume("registered")

    def _resume(self, reason: str) -> None:
        assert self.scheduler is not None
        target = S.QUARANTINED if self._quarantined else self.scheduler.activity()
        self.lifecycle.move(target, reason)
        self.scheduler.wake.set()

    async def _finish(self) -> int:
        """Drain: stop claiming, let running jobs end, deliver or keep reports, leave."""
        assert self.scheduler is not None and self.session is not None
        scheduler = self.scheduler
        if self.lifecycle.state not in FINAL_STATES:
            self.lifecycle.move(S.DRAINING, self._stop_reason)
        self._claims_end.set()
        if self.session.has(m.FEATURE_DEREGISTER):
            # A claim held open by long-poll ends now: deregistering requeues what it got.
            await self.supervisor.cancel("claim")
        elif not await self.supervisor.join("claim", self._hard):
            return await self._stop_hard()
        if not await scheduler.wait_jobs(self._hard):
            return await self._stop_hard()
        self._reports_end.set()
        if not await self.supervisor.join("report", self._hard):
            return await self._stop_hard()
        scheduler.keep_pending()
        try:
            await scheduler.reporter.flush_outbox()
        except OutboxError as exc:
            log.error("outbox: %s", exc)
        await self._deregister()
        self._end.set()
        await self.supervisor.cancel_all()
        return self._final(EXIT_OK, "drained")

    async def _stop_hard(self) -> int:
        assert self.scheduler is not None
        await self.supervisor.cancel("claim")
        await self.scheduler.abandon_jobs()
        await self.supervisor.cancel_all()
        self.scheduler.keep_pending()
        return self._final(EXIT_STOPPED_HARD, "stopped hard")

    def _final(self, code: int, reason: str) -> int:
        assert self.scheduler is not None
        if len(self.outbox):
            log.warning("outbox: %d report(s) kept for the next start", len(self.outbox))
        for item in self.scheduler.unsaved:
            log.error("report lost (not delivered, not kept): %s", item)
        if self._unsafe is not None:
            return self._halt(EXIT_SAFE_HALT, self._unsafe)
        self.lifecycle.move(S.SHUTDOWN, reason)
        return code

    def _halt(self, code: int, reason: str) -> int:
        log.error("cannot go on: %s", reason)
        self.lifecycle.move(S.SAFE_HALT, reason)
        return code

    async def _deregister(self) -> None:
        assert self.session is not None and self._connected is not None
        if not self.session.has(m.FEATURE_DEREGISTER) or self.session.bot_id is None:
            return
        try:
            await self._connected.deregister(
                self.session.bot_id, m.DeregisterRequest(instance_id=self.session.instance_id)
            )
        except CoordinatorError as exc:
            log.warning("deregister failed (%s); the bot lease will run out", exc)
        else:
            log.info("deregistered")

    # ------------------------------------------------------------ hooks (scheduler, heartbeat)

    def may_claim(self) -> bool:
        return self.lifecycle.working and not self._stop.is_set()

    def activity_changed(self, activity: BotState) -> None:
        self.lifecycle.note_activity(activity)

    def fatal(self, error: OutboxError) -> None:
        self._unsafe = f"the outbox cannot keep reports: {error}"
        self.request_drain(self._unsafe)

    def on_unreachable(self, error: CoordinatorError) -> None:
        if self.lifecycle.working:
            self.lifecycle.move(S.DEGRADED_NET, str(error))

    async def renew(self, generation: int) -> bool:
        """Register again (after a 404 or 401); once, however many loops ask at the same time."""
        assert self.session is not None and self._registrar is not None
        async with self._renew_lock:
            if self.session.generation != generation:
                return True
            announce = self.lifecycle.state not in {S.DRAINING, *FINAL_STATES}
            try:
                answer = await self._registrar.register(
                    self._stop if announce else self._hard, announce=announce
                )
            except CoordinatorError as exc:
                self._unsafe = f"registration refused: {exc}"
                self.request_drain(self._unsafe)
                return False
            if answer is None:
                return False
            # A drain may have begun while the answer was on its way: then sync quietly.
            await self._sync(announce=announce and self.lifecycle.state is S.REGISTER)
            return True

    async def on_heartbeat(self, answer: m.HeartbeatResponse) -> None:
        assert self.scheduler is not None and self.session is not None
        if self.lifecycle.state is S.DEGRADED_NET:
            self._resume("coordinator reachable again")
            self.scheduler.flush_now.set()
        changes = self.session.apply_config(answer.config)
        if changes:
            log.info("config from the coordinator: %s", ", ".join(changes))
        if answer.assignment is not None and self.session.apply_assignment(answer.assignment):
            self.scheduler.apply_assignment()
        self.scheduler.running.note_leases(answer.extended)
        for job_id in answer.cancel:
            if not self.scheduler.cancel(job_id):
                log.debug("cancel for job %s, which does not run here", job_id)
        if answer.command is not None:
            self._on_command(answer.command)

    def _on_command(self, command: str) -> None:
        state = self.lifecycle.state
        if command == "drain":
            self.request_drain("drain requested by the coordinator")
        elif command == "quarantine" and not self._quarantined:
            self._quarantined = True
            if state in WORK_STATES or state is S.DEGRADED_NET:
                self.lifecycle.move(S.QUARANTINED, "quarantined by the coordinator")
        elif command == "release" and self._quarantined:
            self._quarantined = False
            if state is S.QUARANTINED:
                self._resume("released by the coordinator")
