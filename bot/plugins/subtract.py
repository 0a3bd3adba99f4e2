"""`subtract`: a - b."""

from __future__ import annotations

from bot.jobs import number_args, op
from bot.state import Job


@op("subtract")
async def handle_subtract(job: Job) -> dict[str, int | float]:
    a, b = number_args(job.payload, "a", "b")
    return {"result": a - b}
