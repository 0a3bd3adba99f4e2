"""Why a queued job waits: no online bot has its operation, or none has the labels it
requires. Worked out when the job is read, from the bots online then."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from botfleet.protocol.labels import describe_requirement, matches
from coordinator.store.base import Store
from coordinator.store.records import BotRoute, JobRecord


async def waiting_for(store: Store, job: JobRecord) -> str | None:
    """The reason a queued job has no online bot that may take it; None when one may
    (or the job is not queued)."""
    if job.state != "queued":
        return None
    return blocker(job.op, job.requires, await store.online_bot_routes())


def blocker(
    op: str, required: Mapping[str, Sequence[str]] | None, bots: Iterable[BotRoute]
) -> str | None:
    """`no online bot has operation OP`, `no online bot has gpu=a100` (the first
    requirement that no bot with the operation meets), or, when each is met by some bot
    but no bot meets them all, `no online bot has gpu=a100 and region=eu`."""
    able = [bot.labels for bot in bots if op in bot.operations]
    if not able:
        return f"no online bot has operation {op}"
    if not required or any(matches(labels, required) for labels in able):
        return None
    for key, values in required.items():
        if not any(labels.get(key) in values for labels in able):
            return f"no online bot has {describe_requirement(key, values)}"
    wanted = " and ".join(describe_requirement(key, values) for key, values in required.items())
    return f"no online bot has {wanted}"
