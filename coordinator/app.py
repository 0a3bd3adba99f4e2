"""The coordinator's aiohttp application: wiring only (routes, middleware, life cycle)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from botfleet.clock import Clock
from botfleet.protocol import encode
from botfleet.protocol.openapi import generate
from botfleet.tracing import Tracer
from coordinator.access import document_roles
from coordinator.auth import Authenticator, BotTokenCache, load_server_tokens
from coordinator.coalesce import ReportCoalescer
from coordinator.config import ServerConfig
from coordinator.context import CONTEXT, AppContext
from coordinator.dashboard import setup_dashboard
from coordinator.gate import access_middleware
from coordinator.longpoll import LongPoller, Waiters
from coordinator.metrics import Metrics
from coordinator.middleware import error_middleware
from coordinator.reaper import Reaper
from coordinator.routes import setup_routes
from coordinator.routes.schedules import template_jobs
from coordinator.scheduling import ScheduleFirer
from coordinator.security_headers import setup_security_headers
from coordinator.state_folder import prepare_state_folder
from coordinator.store.base import Store
from coordinator.throttle import FailedAuthThrottle

SCHEDULE_FIRER = web.AppKey("botfleet_schedule_firer", ScheduleFirer)

log = logging.getLogger(__name__)


def create_app(config: ServerConfig, store: Store, clock: Clock) -> web.Application:
    """The app; it opens the store at startup and closes it at cleanup.

    The admin and enrollment tokens are resolved here (from the config, or the files
    in the state folder, generated if missing), so the caller can say where they are;
    the state folder is made private (0700) first.
    """
    prepare_state_folder(config)
    tokens = load_server_tokens(config)
    waiters = Waiters()
    metrics = Metrics(clock)
    metrics.count_waiting(waiters.waiting)
    cache = BotTokenCache(clock, config.token_cache_ttl_s, config.token_cache_size)
    ctx = AppContext(
        config=config,
        store=store,
        clock=clock,
        tokens=tokens,
        auth=Authenticator(store, clock, tokens, config.open_registration, cache),
        throttle=FailedAuthThrottle(clock, config.auth_failure_limit, config.auth_failure_window_s),
        waiters=waiters,
        poller=LongPoller(
            store,
            clock,
            waiters,
            config.long_poll_recheck_s,
            metrics.observe_claim,
            default_timeout_s=config.default_job_timeout_s,
        ),
        reports=ReportCoalescer(store),
        reaper=Reaper(
            store,
            config.reaper_interval_s,
            metrics.observe_expiry,
            clock,
            startup_grace_s=config.reaper_grace_s,
            retention=config.retention,
            observe_sweep=metrics.observe_sweep,
        ),
        metrics=metrics,
        tracer=Tracer("coordinator", enabled=config.tracing),
        openapi=encode(document_roles(generate())),
    )
    app = web.Application(
        client_max_size=config.max_body_bytes,
        middlewares=[
            error_middleware(config.store_retry_after_s, config.max_body_bytes),
            access_middleware(),
        ],
    )
    app[CONTEXT] = ctx
    setup_routes(app.router)
    setup_dashboard(app)
    setup_security_headers(app)
    app.cleanup_ctx.append(_store_lifetime)
    app.cleanup_ctx.append(_reaper_lifetime)
    app[SCHEDULE_FIRER] = ScheduleFirer(
        store, clock, template_jobs(ctx.tracer), metrics.observe_fired
    )
    app.cleanup_ctx.append(_firer_lifetime)
    app.on_shutdown.append(_release_waiters)
    return app


async def _store_lifetime(app: web.Application) -> AsyncIterator[None]:
    ctx = app[CONTEXT]
    await ctx.store.open()
    for warning in await ctx.store.housekeeping_warnings(ctx.config.retention):
        log.warning("%s", warning)
    ctx.waiters.bind(asyncio.get_running_loop())
    ctx.store.set_listener(ctx.waiters)
    try:
        yield
    finally:
        await ctx.reports.close()
        await ctx.store.close()


async def _reaper_lifetime(app: web.Application) -> AsyncIterator[None]:
    reaper = app[CONTEXT].reaper
    stop = asyncio.Event()
    task = asyncio.create_task(reaper.run(stop), name="botfleet-reaper")
    try:
        yield
    finally:
        stop.set()
        await task


async def _firer_lifetime(app: web.Application) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(app[SCHEDULE_FIRER].run(stop), name="botfleet-schedules")
    try:
        yield
    finally:
        stop.set()
        await task


async def _release_waiters(app: web.Application) -> None:
    """Shutting down: waiting claims answer `{jobs: []}` now instead of holding the exit."""
    app[CONTEXT].waiters.close()
