"""The `Bot`: bootstraps (settings, identity, plugins, outbox, quarantine), then goes online
(`bot.agent.online`) until a stop request or a halt ends it (`bot.agent.shutdown`).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import aiohttp

from bot.agent import hints
from bot.agent.connections import coordinator_client, metrics_endpoint
from bot.agent.lifecycle import Lifecycle
from bot.agent.online import Online
from bot.agent.quarantine import Quarantine
from bot.agent.shutdown import (
    EXIT_BAD_SETTINGS,
    EXIT_OK,
    EXIT_RESTART,
    EXIT_REVOKED,
    EXIT_SAFE_HALT,
    EXIT_STOPPED_HARD,
    end_before_online,
)
from bot.agent.stops import StopRequests
from bot.agent.supervisor import Supervisor
from bot.agent.watchdog import LoopLag, Watchdog
from bot.errors import OutboxError, SettingsError, StateDirError, UnsafeError
from bot.identity import IdentityStore, new_instance_id
from bot.jobs import Registry, load_plugins
from bot.link.circuit import CircuitBreaker
from bot.link.http import Api
from bot.link.session import Session
from bot.logging_setup import bot_context
from bot.reports.outbox import Outbox
from bot.settings import Settings
from bot.state import BotState
from bot.system.disk import Disk
from bot.system.host import HostFacts
from bot.work.scheduler import Scheduler
from botfleet.clock import Clock, SystemClock

__all__ = [
    "EXIT_BAD_SETTINGS",
    "EXIT_OK",
    "EXIT_RESTART",
    "EXIT_REVOKED",
    "EXIT_SAFE_HALT",
    "EXIT_STOPPED_HARD",
    "Bot",
]

log = logging.getLogger(__name__)


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
        self.stops = StopRequests()
        self._registry = registry
        self._api = api
        self._http = http
        self.clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._host = host or HostFacts.detect()
        disk = disk or Disk()
        self.outbox = Outbox(settings.state_dir, disk=disk)
        self.identity = IdentityStore(
            settings.state_dir, disk=disk, make_instance_id=make_instance_id
        )
        self.quarantine = Quarantine(
            settings.state_dir, disk=disk, crash_loop_limit=settings.crash_loop_limit
        )
        self.circuit = CircuitBreaker(
            settings.circuit_threshold,
            window_s=settings.circuit_window_s,
            monotonic=self.clock.monotonic,
        )
        self.watchdog = Watchdog(self.clock, settings.watchdog_tick_s)
        self.loop_lag = LoopLag(settings.loop_lag_tick_s, settings.loop_lag_limit_s)
        self.supervisor = Supervisor()
        self.online: Online | None = None  # once the bot has a session
        self.metrics_port: int | None = None  # where metrics are served, once they are

    @property
    def state(self) -> BotState:
        return self.lifecycle.state

    @property
    def scheduler(self) -> Scheduler | None:
        return self.online.scheduler if self.online is not None else None

    @property
    def session(self) -> Session | None:
        return self.online.session if self.online is not None else None

    # ------------------------------------------------------------ stop requests

    def request_stop(self, reason: str = "stop requested") -> None:
        """First call: drain and shut down. Second call: stop hard. Safe before `run()`."""
        self.stops.request_stop(reason)

    def request_drain(self, reason: str) -> None:
        self.stops.request_drain(reason)

    def halt(self, error: UnsafeError) -> None:
        """Going on is unsafe: stop claiming and running, keep what was kept, exit non-zero."""
        self.stops.halt(error)

    # ------------------------------------------------------------ run

    async def run(self) -> int:
        """Run until stopped; the exit code (0 clean, 1 hard stop, 2 bad settings, 3 halt,
        4 drained for a restart)."""
        lifecycle, stops = self.lifecycle, self.stops
        log_context = bot_context()
        try:
            registry, session = self._bootstrap()
        except SettingsError as exc:
            return end_before_online(lifecycle, stops, EXIT_BAD_SETTINGS, hints.bad_setting(exc))
        except (StateDirError, OutboxError) as exc:
            error = hints.state_dir(self.settings, exc)
            return end_before_online(lifecycle, stops, EXIT_SAFE_HALT, error)
        try:
            async with (
                coordinator_client(
                    self.settings, self.clock, api=self._api, http=self._http
                ) as api,
                metrics_endpoint(self, self.settings.metrics_port) as metrics_port,
            ):
                self.metrics_port = metrics_port
                self.online = Online(
                    settings=self.settings,
                    clock=self.clock,
                    rng=self._rng,
                    host=self._host,
                    lifecycle=lifecycle,
                    stops=stops,
                    outbox=self.outbox,
                    identity=self.identity,
                    quarantine=self.quarantine,
                    circuit=self.circuit,
                    watchdog=self.watchdog,
                    loop_lag=self.loop_lag,
                    supervisor=self.supervisor,
                    log_context=log_context,
                    registry=registry,
                    api=api,
                    session=session,
                )
                return await self.online.run()
        except SettingsError as exc:
            return end_before_online(lifecycle, stops, EXIT_BAD_SETTINGS, hints.bad_setting(exc))
        finally:
            self.outbox.close()

    def _bootstrap(self) -> tuple[Registry, Session]:
        settings, host = self.settings, self._host
        identity = self.identity.rotate_instance_id(
            self.identity.load(settings.bot_name, host.hostname, host.platform)
        )
        registry = self._registry
        if registry is None:
            registry = load_plugins(Registry(), settings.plugins)
        if not len(registry):
            raise SettingsError("BOT_PLUGINS", "no job handler loaded: nothing to do")
        self.outbox.open()
        self.quarantine.load()
        log.info(
            "bot %s (key %s…, instance %s) handles %s",
            identity.name,
            identity.bot_key[:12],
            identity.instance_id,
            ", ".join(registry.operations()),
        )
        return registry, Session.start(settings, identity, registry.operations())
