"""What every handler needs, held once per app under one typed key."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from botfleet.clock import Clock
from botfleet.tracing import Tracer
from coordinator.auth import Authenticator, ServerTokens
from coordinator.coalesce import ReportCoalescer
from coordinator.config import ServerConfig
from coordinator.longpoll import LongPoller, Waiters
from coordinator.metrics import Metrics
from coordinator.reaper import Reaper
from coordinator.store.base import Store
from coordinator.throttle import FailedAuthThrottle


@dataclass(frozen=True, slots=True)
class AppContext:
    config: ServerConfig
    store: Store
    clock: Clock
    tokens: ServerTokens
    auth: Authenticator
    throttle: FailedAuthThrottle  # failed authentications per client address
    waiters: Waiters
    poller: LongPoller
    reports: ReportCoalescer
    reaper: Reaper
    metrics: Metrics
    tracer: Tracer  # OpenTelemetry spans; free when not installed or disabled
    openapi: bytes  # /openapi.json, generated once


CONTEXT = web.AppKey("botfleet_context", AppContext)


def context(request: web.Request) -> AppContext:
    return request.app[CONTEXT]
