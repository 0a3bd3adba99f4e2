"""Why a queued job waits: jobs it depends on have not succeeded yet, or no online bot
has its operation, or none has the labels it requires, or a limit it falls under is
full. Worked out when the job is read, from the dependencies, the bots online and the
limits then."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from botfleet.protocol.labels import describe_requirement, matches
from coordinator.store.base import Store
from coordinator.store.dependencies import waiting_for as dependencies_pending
from coordinator.store.limits import LimitRecord, op_limit
from coordinator.store.records import BotRoute, JobRecord


async def waiting_for(store: Store, job: JobRecord) -> str | None:
    """What a queued job waits for: its unfinished dependencies, else the reason no
    online bot may take it, else the limit that holds it back; None when nothing does
    (or the job is not queued)."""
    if job.state != "queued":
        return None
    if job.waiting_on > 0:
        return dependencies_pending(await store.pending_dependencies(job.id))
    reason = blocker(job.op, job.requires, await store.online_bot_routes())
    if reason is not None:
        return reason
    names = (*job.limits, op_limit(job.op))
    if not job.limits and names[0] not in await store.limit_names():
        return None  # no limit covers it: spare the running counts
    return limit_blocker(names, await store.list_limits())


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


def limit_blocker(names: Sequence[str], limits: Iterable[LimitRecord]) -> str | None:
    """The first of `names` (the limits a job falls under) without room now:
    `held by limit db (2 of 2 running)`, or `held by limit api (rate 5/s used up)`."""
    by_name = {limit.name: limit for limit in limits}
    for name in names:
        limit = by_name.get(name)
        if limit is None:
            continue  # deleted since, or an op: limit nobody set
        if limit.max_running is not None and limit.running >= limit.max_running:
            return f"held by limit {name} ({limit.running} of {limit.max_running} running)"
        # Below one whole token no claim may start a job under it (see `allowance`).
        if limit.per_second is not None and limit.tokens + 1e-9 < 1:
            return f"held by limit {name} (rate {limit.per_second:g}/s used up)"
    return None
