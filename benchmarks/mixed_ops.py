"""The operation `benchmarks/mixed.py` runs: `nap`, which sleeps the payload's `seconds`
(0 for a trivial job) and answers when its handler started and ended (wall clock), so
the benchmark can tell when each job ran, and on which bot, against when it was claimed.

Loaded by the benchmark's bots through BOT_PLUGINS=benchmarks.mixed_ops; the Celery
side has the same task in `benchmarks/celery_tasks.py`.
"""

from __future__ import annotations

import asyncio
import time

from bot.jobs import number_args, op
from bot.state import Job


@op("nap")
async def handle_nap(job: Job) -> dict[str, float]:
    started = time.time()
    (seconds,) = number_args(job.payload, "seconds")
    if seconds > 0:
        await asyncio.sleep(seconds)
    return {"started": started, "ended": time.time()}
