"""Limits on SQLite: setting them, and the claim that picks jobs under them.

SQLite has one writer, so reading the limits and the running counts inside the claim's
write transaction makes the decision exact without further locking.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    limits_of,
    operations_to_wake,
    record,
    soonest_token,
    spent,
    started,
)
from coordinator.store.sqlite.rows import dump_json
from coordinator.store.sqlite.tx import Tx

_US = 1_000_000


def _states(tx: Tx) -> dict[str, LimitState]:
    return {
        row["name"]: LimitState(
            row["name"],
            row["max_running"],
            row["per_second"],
            row["burst"],
            row["tokens"],
            row["refilled_at"] / _US,
            StartWindow(row["window_at"] / _US, row["window_starts"], row["previous_starts"]),
        )
        for row in tx.all("all_limits")
    }


def _op_names(states: dict[str, LimitState]) -> str:
    return dump_json([name.removeprefix("op:") for name in states if name.startswith("op:")])


def _running(tx: Tx, states: dict[str, LimitState]) -> dict[str, int]:
    ops = _op_names(states)
    by_key = [(row["limit_key"], row["n"]) for row in tx.all("running_by_limit_key")]
    by_op = (
        [(row["op"], row["n"]) for row in tx.all("running_by_op", {"ops": ops})]
        if ops != "[]"
        else []
    )
    return count_by_limit(states, by_key, by_op)


def queued_by_limit(tx: Tx) -> dict[str, int]:
    """Jobs ready to run under each limit (due, no dependency left)."""
    states = _states(tx)
    if not states:
        return {}
    now = {"now": tx.now}
    ops = _op_names(states)
    by_key = [(row["limit_key"], row["n"]) for row in tx.all("queued_by_limit_key", now)]
    by_op = (
        [(row["op"], row["n"]) for row in tx.all("queued_by_op", {**now, "ops": ops})]
        if ops != "[]"
        else []
    )
    return count_by_limit(states, by_key, by_op)


def put_limit(tx: Tx, spec: LimitSpec) -> None:
    params = {
        "name": spec.name, "max_running": spec.max_running, "per_second": spec.per_second,
        "burst": spec.burst, "now": tx.now,
    }  # fmt: skip
    tx.run("put_limit", params)
    tx.changes.limit_changed(spec.name)


def delete_limit(tx: Tx, name: str) -> bool:
    if tx.one("delete_limit", {"name": name}) is None:
        return False
    tx.changes.limit_changed(name)
    return True


def wake_for_freed(tx: Tx) -> None:
    """Before commit: the jobs taken out of `running` that were under a limit free their
    places, and the operations with claimable jobs under a named limit with room again
    are added to the transaction's changes, so that their waiting claims look again."""
    changes = tx.changes
    if changes.left_running:
        names = limit_names(tx)
        for op, limit_key in changes.left_running:
            if is_limited(op, limit_key, names):
                changes.freed(op, limit_key)
        changes.left_running.clear()
    if not changes.freed_limits:
        return
    ops = [row["op"] for row in tx.all("queued_limited_ops")]
    if ops:
        groups = tx.all("claimable_limit_keys", {"ops": dump_json(ops)})
        keyed = [(row["op"], row["limit_key"]) for row in groups if row["limit_key"] is not None]
        changes.ops.extend(operations_to_wake(changes.freed_limits, keyed))
        changes.counted = False
    changes.freed_limits.clear()


def list_limits(tx: Tx) -> list[LimitRecord]:
    states = _states(tx)
    running = _running(tx, states)
    now_s = tx.now / _US
    return [record(state, running[state.name], now_s) for state in states.values()]


def seconds_until_tokens(tx: Tx, wanted: Sequence[str]) -> float | None:
    """Seconds until a rate limit that alone holds back claimable jobs of these
    operations has a token again; None when none does."""
    states = _states(tx)
    if not any(state.per_second is not None for state in states.values()):
        return None
    found = tx.all("claimable_limit_keys", {"ops": dump_json(list(wanted))})
    if not found:
        return None
    groups = [(row["op"], row["limit_key"]) for row in found]
    return soonest_token(states, _running(tx, states), groups, tx.now / _US)


def limit_names(tx: Tx) -> set[str]:
    return set(_states(tx))


def pick_under_limits(
    tx: Tx, wanted: Sequence[str], limit: int, max_concurrency: int, bot_id: str, labels: Any
) -> list[int] | None:
    """The seqs of the jobs to start when limits are in play for these operations (their
    tokens spent), or None when none are: the caller then takes the one-statement claim.
    A full limit's jobs are never read: only limit_keys whose limits have room are."""
    found = tx.all("claimable_limit_keys", {"ops": dump_json(list(wanted))})
    if not found:
        return None
    keys = [row for row in found if row["limit_key"] is not None]
    states = _states(tx)
    running = _running(tx, states)
    now_s = tx.now / _US
    left = {name: allowance(s, running[name], now_s) for name, s in states.items()}
    held = tx.one("bot_running_count", {"bot_id": bot_id})
    room = max(0, min(limit, max_concurrency - (held["n"] if held else 0)))
    if room == 0:
        return []
    candidates: list[Candidate] = []
    base = {"now": tx.now, "labels": labels}
    for op in wanted:
        op_names = limits_of(op, None, states)
        cap = min([room, *(left[name] for name in op_names)])
        if cap > 0:
            rows = tx.all("claim_free_candidates", {**base, "op": op, "limit": cap})
            candidates += [Candidate(r["seq"], r["priority"], r["seq"], op_names) for r in rows]
    for key_row in keys:
        op, key = key_row["op"], key_row["limit_key"]
        names = limits_of(op, key, states)
        cap = min([room, *(left[name] for name in names)])
        if cap > 0:
            params = {**base, "op": op, "limit_key": key, "limit": cap}
            rows = tx.all("claim_limited_candidates", params)
            candidates += [Candidate(r["seq"], r["priority"], r["seq"], names) for r in rows]
    chosen = choose(candidates, room, left)
    if not chosen:
        return []
    for name, n in spent(chosen).items():
        after = started(states[name], n, now_s)
        params = {
            "name": name, "tokens": after.tokens, "refilled_at": round(after.refilled_at_s * _US),
            "window_at": round(after.window.at_s * _US), "window_starts": after.window.starts,
            "previous_starts": after.window.previous,
        }  # fmt: skip
        tx.run("record_starts", params)
    return [int(candidate.key) for candidate in chosen]
