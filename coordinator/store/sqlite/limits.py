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
    allowance,
    choose,
    limits_of,
    running_by_limit,
    spent,
    tokens_now,
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
        )
        for row in tx.all("all_limits")
    }


def _running(tx: Tx, states: dict[str, LimitState]) -> dict[str, int]:
    ops = [name.removeprefix("op:") for name in states if name.startswith("op:")]
    by_key = [(row["limit_key"], row["n"]) for row in tx.all("running_by_limit_key")]
    by_op = (
        [(row["op"], row["n"]) for row in tx.all("running_by_op", {"ops": dump_json(ops)})]
        if ops
        else []
    )
    return running_by_limit(states, by_key, by_op)


def put_limit(tx: Tx, spec: LimitSpec) -> None:
    params = {
        "name": spec.name, "max_running": spec.max_running, "per_second": spec.per_second,
        "burst": spec.burst, "now": tx.now,
    }  # fmt: skip
    tx.run("put_limit", params)


def delete_limit(tx: Tx, name: str) -> bool:
    return tx.one("delete_limit", {"name": name}) is not None


def list_limits(tx: Tx) -> list[LimitRecord]:
    states = _states(tx)
    running = _running(tx, states)
    now_s = tx.now / _US
    return [
        LimitRecord(
            s.name, s.max_running, s.per_second, s.burst, running[s.name], tokens_now(s, now_s)
        )
        for s in states.values()
    ]


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
        state = states[name]
        if state.per_second is not None:
            tokens = tokens_now(state, now_s) - n
            tx.run("spend_tokens", {"name": name, "tokens": tokens, "now": tx.now})
    return [int(candidate.key) for candidate in chosen]
