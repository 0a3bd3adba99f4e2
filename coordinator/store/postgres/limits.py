"""Limits on PostgreSQL: setting them, and the claim that picks jobs under them.

A claim locks the rows of the limits it would use (FOR UPDATE, in name order) before it
counts the jobs running under them. Every start under a limit happens in a transaction
holding that limit's row, so the count a claim reads after taking the lock includes
every start before it, in whichever coordinator: the limits hold exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from coordinator.store.limits import (
    Candidate,
    LimitRecord,
    LimitSpec,
    LimitState,
    StartWindow,
    allowance,
    choose,
    count_by_limit,
    is_limited,
    key_names,
    limits_of,
    op_limit,
    operations_to_wake,
    record,
    soonest_token,
    spent,
    started,
)
from coordinator.store.postgres.tx import Tx


def _state(row: Any) -> LimitState:
    window = StartWindow(row["window_at"].timestamp(), row["window_starts"], row["previous_starts"])
    return LimitState(
        row["name"], row["max_running"], row["per_second"], row["burst"], row["tokens"],
        row["refilled_at"].timestamp(), window,
    )  # fmt: skip


def _op_names(states: dict[str, LimitState]) -> list[str]:
    return [name.removeprefix("op:") for name in states if name.startswith("op:")]


def _moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


async def _running(tx: Tx, states: dict[str, LimitState]) -> dict[str, int]:
    ops = _op_names(states)
    by_key = [(row["limit_key"], row["n"]) for row in await tx.fetch("running_by_limit_key")]
    by_op = [(row["op"], row["n"]) for row in await tx.fetch("running_by_op", ops)] if ops else []
    return count_by_limit(states, by_key, by_op)


async def queued_by_limit(tx: Tx) -> dict[str, int]:
    """Jobs ready to run under each limit (due, no dependency left)."""
    states = {row["name"]: _state(row) for row in await tx.fetch("all_limits")}
    if not states:
        return {}
    ops = _op_names(states)
    rows = await tx.fetch("queued_by_limit_key", tx.now)
    by_key = [(row["limit_key"], row["n"]) for row in rows]
    by_op = (
        [(row["op"], row["n"]) for row in await tx.fetch("queued_by_op", ops, tx.now)]
        if ops
        else []
    )
    return count_by_limit(states, by_key, by_op)


async def put_limit(tx: Tx, spec: LimitSpec) -> None:
    await tx.execute("put_limit", spec.name, spec.max_running, spec.per_second, spec.burst, tx.now)
    tx.changes.limit_changed(spec.name)


async def delete_limit(tx: Tx, name: str) -> bool:
    if await tx.fetchrow("delete_limit", name) is None:
        return False
    tx.changes.limit_changed(name)
    return True


async def wake_for_freed(tx: Tx) -> None:
    """Before the transaction's notices: the jobs taken out of `running` that were under
    a limit free their places, and the operations with claimable jobs under a named
    limit with room again are added to its changes, so that waiting claims in every
    coordinator look again."""
    changes = tx.changes
    if changes.left_running:
        names = await limit_names(tx)
        for op, limit_key in changes.left_running:
            if is_limited(op, limit_key, names):
                changes.freed(op, limit_key)
        changes.left_running.clear()
    if not changes.freed_limits:
        return
    ops = [row["op"] for row in await tx.fetch("queued_limited_ops")]
    if ops:
        groups = await tx.fetch("claimable_limit_keys", ops)
        keyed = [(row["op"], row["limit_key"]) for row in groups if row["limit_key"] is not None]
        changes.ops.extend(operations_to_wake(changes.freed_limits, keyed))
        changes.counted = False
    changes.freed_limits.clear()


async def list_limits(tx: Tx) -> list[LimitRecord]:
    states = {row["name"]: _state(row) for row in await tx.fetch("all_limits")}
    running = await _running(tx, states)
    now_s = tx.now.timestamp()
    return [record(state, running[state.name], now_s) for state in states.values()]


async def seconds_until_tokens(tx: Tx, wanted: Sequence[str]) -> float | None:
    """Seconds until a rate limit that alone holds back claimable jobs of these
    operations has a token again; None when none does."""
    states = {row["name"]: _state(row) for row in await tx.fetch("all_limits")}
    if not any(state.per_second is not None for state in states.values()):
        return None
    found = await tx.fetch("claimable_limit_keys", list(wanted))
    if not found:
        return None
    groups = [(row["op"], row["limit_key"]) for row in found]
    return soonest_token(states, await _running(tx, states), groups, tx.now.timestamp())


async def limit_names(tx: Tx) -> set[str]:
    return {row["name"] for row in await tx.fetch("all_limits")}


async def _all_full(tx: Tx, keys: Sequence[Any], names: set[str]) -> bool:
    """Whether every limit group queued has a limit without room, read without locks.
    The common case of a full limit: the claim then takes the plain path, with no lock
    and no stepwise reads."""
    rows = await tx.fetch("limits_with_running", sorted(names))
    now_s = tx.now.timestamp()
    left = {row["name"]: allowance(_state(row), row["running"], now_s) for row in rows}
    return all(any(left.get(name, 1) == 0 for name in key_names(row["limit_key"])) for row in keys)


async def pick_under_limits(
    tx: Tx, wanted: Sequence[str], limit: int, max_concurrency: int, bot_id: str, labels: Any
) -> list[str] | None:
    """The ids of the jobs to start (locked, their tokens spent) when limits are in play
    for these operations, or None when none are: the caller then takes the
    one-statement claim. A full limit's jobs are never read: only the limit_keys whose
    limits all have room are."""
    found = await tx.fetch("claimable_limit_keys", list(wanted))
    if not found:
        return None
    keys = [row for row in found if row["limit_key"] is not None]
    op_limited = [row["op"] for row in found if row["limit_key"] is None]
    in_play = {op_limit(op) for op in op_limited}
    for row in keys:
        in_play.update(key_names(row["limit_key"]))
    if not op_limited and await _all_full(tx, keys, in_play):
        return None  # only jobs without limits can start: the one-statement claim
    # Names that do not exist (deleted, or never made) lock nothing and stay out.
    states = {row["name"]: _state(row) for row in await tx.fetch("lock_limits", sorted(in_play))}
    running = await _running(tx, states)
    now_s = tx.now.timestamp()
    left = {name: allowance(s, running[name], now_s) for name, s in states.items()}
    held = await tx.fetchval("bot_running_count", bot_id)
    room = max(0, min(limit, max_concurrency - held))
    if room == 0:
        return []
    candidates: list[Candidate] = []
    for op in wanted:
        op_names = limits_of(op, None, states)
        cap = min([room, *(left[name] for name in op_names)])
        if cap > 0:
            rows = await tx.fetch("claim_free_candidates", op, cap, tx.now, labels)
            candidates += [Candidate(r["id"], r["priority"], r["seq"], op_names) for r in rows]
    for key_row in keys:
        op, key = key_row["op"], key_row["limit_key"]
        names = limits_of(op, key, states)
        cap = min([room, *(left[name] for name in names)])
        if cap > 0:
            rows = await tx.fetch("claim_limited_candidates", op, key, cap, tx.now, labels)
            candidates += [Candidate(r["id"], r["priority"], r["seq"], names) for r in rows]
    chosen = choose(candidates, room, left)
    after = [started(states[name], n, now_s) for name, n in spent(chosen).items()]
    if after:
        await tx.execute(
            "record_starts", [a.name for a in after], [a.tokens for a in after],
            [_moment(a.refilled_at_s) for a in after], [_moment(a.window.at_s) for a in after],
            [a.window.starts for a in after], [a.window.previous for a in after],
        )  # fmt: skip
    return [str(candidate.key) for candidate in chosen]
