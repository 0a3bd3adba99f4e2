"""The progress loop: sends each running job's latest progress, at most once per interval.

Best effort: without the `progress` feature, or while the coordinator is unreachable,
heartbeats carry it instead; a transient failure sends the latest value again later.
"""

from __future__ import annotations

import asyncio
import logging

from bot.errors import CoordinatorError
from bot.link.http import Api
from bot.link.session import Session
from bot.settings import Settings
from bot.waiting import sleep_or
from bot.work.hooks import SchedulerHooks
from bot.work.running_jobs import RunningJobs
from botfleet.clock import Clock
from botfleet.protocol import messages as m

log = logging.getLogger(__name__)

MAX_MESSAGE = 1000  # the protocol's bound on a progress message


async def progress_loop(
    stop: asyncio.Event,
    *,
    api: Api,
    session: Session,
    settings: Settings,
    clock: Clock,
    hooks: SchedulerHooks,
    running: RunningJobs,
) -> None:
    while not stop.is_set():
        await sleep_or(clock, None, stop, running.progressed)
        for entry, fraction, message in running.take_progress():
            if not session.has(m.FEATURE_PROGRESS) or not hooks.reachable():
                continue
            request = m.ProgressRequest(
                instance_id=session.instance_id,
                attempt=entry.job.attempt,
                progress=fraction,
                message=message[:MAX_MESSAGE] if message else None,
            )
            try:
                await api.progress(entry.job.id, request)
            except CoordinatorError as exc:
                log.debug("progress of %s not sent: %s", entry.job.id, exc)
                if exc.transient:
                    running.retry_progress(entry.job.id)
        await sleep_or(clock, settings.progress_interval_s, stop)
