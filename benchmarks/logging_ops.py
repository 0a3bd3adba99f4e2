"""The operation `benchmarks/logs.py` runs against plain `sum`: `sum` that logs 10 lines.

Loaded by the benchmark's bots through BOT_PLUGINS=benchmarks.logging_ops.
"""

from __future__ import annotations

from bot.jobs import number_args, op
from bot.state import Job

LINES_PER_JOB = 10


@op("sum_logged")
async def handle_sum_logged(job: Job) -> dict[str, int | float]:
    a, b = number_args(job.payload, "a", "b")
    for n in range(LINES_PER_JOB):
        job.log(f"step {n}: adding {a} and {b}")
    return {"result": a + b}
