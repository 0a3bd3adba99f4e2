"""Prometheus metrics of one bot, with its health, served on BOT_METRICS_PORT.

`GET /metrics` (Prometheus text), `GET /healthz` (the process is alive) and
`GET /readyz` (registered and in touch with the coordinator: 200 in the work
states and QUARANTINED, 503 otherwise, the state named in the body).

Values are read from the bot when scraped, so the bot's code carries no metric
calls: state, running jobs, slots, outbox size, finished jobs by operation and
outcome, and reports by what became of them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from bot.agent.lifecycle import WORK_STATES
from bot.agent.watchdog import LoopLag
from bot.link.circuit import CircuitBreaker
from bot.reports.outbox import Outbox
from bot.state import BotState
from bot.work.scheduler import Scheduler

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)

READY_STATES = WORK_STATES | {BotState.QUARANTINED}


class Observed(Protocol):
    """What the metrics read of a bot (its scheduler once it is online)."""

    @property
    def state(self) -> BotState: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def circuit(self) -> CircuitBreaker: ...

    @property
    def loop_lag(self) -> LoopLag: ...

    @property
    def scheduler(self) -> Scheduler | None: ...


class BotCollector(Collector):
    def __init__(self, bot: Observed) -> None:
        self._bot = bot

    def collect(self) -> Iterator[Metric]:
        bot = self._bot
        state = GaugeMetricFamily(
            "botfleet_bot_state", "1 for the lifecycle state the bot is in", labels=["state"]
        )
        for candidate in BotState:
            state.add_metric([candidate.value], 1.0 if bot.state is candidate else 0.0)
        yield state
        yield GaugeMetricFamily(
            "botfleet_bot_outbox_reports", "reports waiting in the outbox", value=len(bot.outbox)
        )
        yield CounterMetricFamily(
            "botfleet_bot_circuit_opened",
            "times the circuit opened (the coordinator unreachable: DEGRADED_NET)",
            value=bot.circuit.opened,
        )
        yield GaugeMetricFamily(
            "botfleet_bot_loop_lag_seconds",
            "how late the event loop woke up at its last measure",
            value=bot.loop_lag.last_s,
        )
        yield CounterMetricFamily(
            "botfleet_bot_loop_stalls",
            "event-loop stalls above the limit",
            value=bot.loop_lag.stalls,
        )
        scheduler = bot.scheduler
        if scheduler is None:
            return
        yield GaugeMetricFamily(
            "botfleet_bot_running_jobs", "jobs running now", value=len(scheduler.running)
        )
        yield GaugeMetricFamily(
            "botfleet_bot_slots", "jobs allowed at once", value=scheduler.slots.capacity
        )
        held = scheduler.held
        yield GaugeMetricFamily(
            "botfleet_bot_prefetched_jobs",
            "jobs claimed beyond the free slots, waiting here for one",
            value=len(held),
        )
        prefetched = CounterMetricFamily(
            "botfleet_bot_prefetched",
            "jobs that waited here for a slot (claimed beyond the free slots)",
            labels=["op"],
        )
        for op, count in sorted(held.prefetched.items()):
            prefetched.add_metric([op], count)
        yield prefetched
        yield CounterMetricFamily(
            "botfleet_bot_prefetch_released",
            "prefetched jobs given back to the queue unstarted (hold time passed, drain)",
            value=held.released,
        )
        threads = scheduler.threads
        yield GaugeMetricFamily(
            "botfleet_bot_threads_left_behind",
            "abandoned handler threads still running (their job was cancelled or timed out)",
            value=threads.abandoned,
        )
        yield CounterMetricFamily(
            "botfleet_bot_threads_abandoned",
            "handler threads abandoned: their job ended while the handler ran on",
            value=threads.abandoned_total,
        )
        jobs = CounterMetricFamily(
            "botfleet_bot_jobs", "jobs run to an outcome", labels=["op", "outcome"]
        )
        for (op, outcome), count in sorted(scheduler.finished.items()):
            jobs.add_metric([op, outcome], count)
        yield jobs
        durations = HistogramMetricFamily(
            "botfleet_bot_job_duration_seconds", "how long handlers ran", labels=["op"]
        )
        for op, entry in sorted(scheduler.durations.by_op.items()):
            durations.add_metric([op], entry.cumulative(), entry.sum_s)
        yield durations
        reports = CounterMetricFamily(
            "botfleet_bot_reports",
            "reports: accepted, dropped (refused for good), kept in the outbox, replaced "
            "(too large to deliver)",
            labels=["outcome"],
        )
        counts = scheduler.reporter.counts
        for outcome, count in (
            ("accepted", counts.accepted),
            ("dropped", counts.dropped),
            ("kept", counts.kept),
            ("replaced", counts.replaced),
        ):
            reports.add_metric([outcome], count)
        yield reports


class MetricsServer:
    """`GET /metrics` on `host:port` (port 0: any free port, see `port` once started)."""

    def __init__(self, bot: Observed, port: int, host: str = "0.0.0.0") -> None:
        self._bot = bot
        self._registry = CollectorRegistry()
        self._registry.register(BotCollector(bot))
        self._host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def _metrics(self, request: web.Request) -> web.Response:
        from aiohttp import web

        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        from aiohttp import web

        return web.json_response({"status": "ok", "state": self._bot.state.value})

    async def _readyz(self, request: web.Request) -> web.Response:
        from aiohttp import web

        state = self._bot.state
        ready = state in READY_STATES
        return web.json_response(
            {"status": "ok" if ready else "unavailable", "state": state.value},
            status=200 if ready else 503,
        )

    async def start(self) -> None:
        # Imported here: most bots serve no metrics, and aiohttp's server side is a
        # noticeable share of a bot's start-up, which a fleet of short-lived bots pays.
        from aiohttp import web

        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self.port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        if runner.addresses:
            self.port = int(runner.addresses[0][1])
        log.info("metrics on http://%s:%d/metrics", self._host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
