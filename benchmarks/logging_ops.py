"""The operation `benchmarks/logs.py` runs: `sum` that logs the payload's `lines` lines
(10 against 0, so both kinds run the very same handler).

Loaded by the benchmark's bots through BOT_PLUGINS=benchmarks.logging_ops.
"""

from __future__ import annotations

from bot.jobs import number_args, op
from bot.state import Job


@op("sum_logged")
async def handle_sum_logged(job: Job) -> dict[str, int | float]:
    a, b, lines = number_args(job.payload, "a", "b", "lines")
    for n in range(int(lines)):
        job.log(f"step {n}: adding {a} and {b}")
    return {"result": a + b}
