"""The bot verbs of the SQLite store, each run inside one write transaction (`Tx`)."""

from __future__ import annotations

import secrets
from typing import Any

import coordinator.store.records as records
from coordinator.store.base import BotRevoked
from coordinator.store.rules import (
    BOT_DEREGISTERED,
    INSTANCE_REPLACED,
    OperatorChoices,
    after_heartbeat,
    assignment_of,
    choices_after,
    max_concurrency_of,
)
from coordinator.store.sqlite.leases import release_jobs_of_bots, release_lost_jobs
from coordinator.store.sqlite.reads import load_bot, require_bot
from coordinator.store.sqlite.rows import dump_json, from_us, id_list, load_json, to_us
from coordinator.store.sqlite.tx import Tx


def new_bot_id() -> str:
    return "bot_" + secrets.token_hex(8)


def operator_choices(row: Any) -> OperatorChoices:
    """The operator's choices kept in a bot row (`bot_by_key`, `bot_assignment`)."""
    operations = row["operator_operations"]
    return OperatorChoices(
        operations=None if operations is None else tuple(load_json(operations)),
        max_concurrency=row["operator_max_concurrency"],
        paused=bool(row["paused"]),
    )


def register_bot(tx: Tx, registration: records.Registration) -> records.RegisterOutcome:
    existing = tx.one("bot_by_key", {"bot_key": registration.bot_key})
    if existing is not None and existing["revoked_at"] is not None:
        raise BotRevoked(existing["id"])
    own_concurrency = max_concurrency_of(registration)
    chosen = OperatorChoices() if existing is None else operator_choices(existing)
    assignment = assignment_of(registration.capabilities, own_concurrency, chosen)
    fields: dict[str, Any] = {
        "bot_key": registration.bot_key,
        "instance_id": registration.instance_id,
        "name": registration.name,
        "version": registration.version,
        "capabilities": dump_json(registration.capabilities),
        "operations": dump_json(list(assignment.operations)),
        "max_concurrency": assignment.max_concurrency,
        "bot_max_concurrency": own_concurrency,
        "token_hash": registration.token_hash,
        "token_expires_at": to_us(registration.token_expires_at),
        "lease_until": to_us(registration.lease_until),
        "resources": dump_json(registration.resources),
        "constraints": dump_json(registration.constraints),
        "meta": dump_json(registration.meta),
        "labels": dump_json(registration.labels) if registration.labels else None,
        "now": tx.now,
    }
    released: tuple[str, ...] = ()
    if existing is None:
        bot_id = new_bot_id()
        tx.run("insert_bot", {**fields, "id": bot_id})
    else:
        bot_id = existing["id"]
        new_instance = existing["instance_id"] != registration.instance_id
        if new_instance:
            # The old process is gone: its jobs go back now, not when their leases end.
            moved = release_jobs_of_bots(tx, [bot_id], INSTANCE_REPLACED)
            released = tuple(row["id"] for row in moved)
        tx.run("reregister_bot", {**fields, "id": bot_id, "new_instance": new_instance})
    return records.RegisterOutcome(
        bot=require_bot(tx, bot_id), created=existing is None, released_job_ids=released
    )


def heartbeat(tx: Tx, beat: records.HeartbeatInput) -> records.HeartbeatOutcome | None:
    bot_id = beat.bot_id
    row = tx.one("bot_for_heartbeat", {"id": bot_id, "instance_id": beat.instance_id})
    if row is None:
        return None
    lifecycle, command = after_heartbeat(beat.lifecycle, row["lifecycle"], row["pending_command"])
    tx.run(
        "heartbeat_bot",
        {
            "id": bot_id,
            "now": tx.now,
            "lease_until": tx.now + round(beat.bot_lease_ttl_s * 1_000_000),
            "lifecycle": lifecycle,
            "pending_command": command,
            "metrics": dump_json(beat.metrics),
            "held": dump_json(list(beat.held_job_ids)) if beat.held_job_ids else None,
        },
    )
    ids = id_list(beat.running_job_ids)
    released = release_lost_jobs(tx, bot_id, row["last_heartbeat"], ids)
    extended: dict[str, Any] = {}
    cancel: tuple[str, ...] = ()
    if beat.running_job_ids:
        renewed = tx.all(
            "extend_leases",
            {
                "ids": ids,
                "bot_id": bot_id,
                "now": tx.now,
                "ttl_s": beat.job_lease_ttl_s,
                "default_timeout_s": beat.default_timeout_s,
            },
        )
        tx.many(
            "extend_attempt_lease",
            (
                {"job_id": r["id"], "attempt": r["attempt"], "lease_until": r["lease_until"]}
                for r in renewed
            ),
        )
        extended = {r["id"]: from_us(r["lease_until"]) for r in renewed}
        cancelled = tx.all("cancelled_among", {"ids": ids, "bot_id": bot_id})
        cancel = tuple(r["id"] for r in cancelled)
    return records.HeartbeatOutcome(
        bot=require_bot(tx, bot_id),
        extended=extended,
        cancel=cancel,
        command=command,
        released=released,
    )


def update_bot(tx: Tx, bot_id: str, update: records.BotUpdate) -> records.BotRecord | None:
    row = tx.one("bot_assignment", {"id": bot_id})
    if row is None:
        return None
    chosen = choices_after(operator_choices(row), update)
    assignment = assignment_of(load_json(row["capabilities"]), row["bot_max_concurrency"], chosen)
    operator_operations = chosen.operations
    tx.one(
        "update_bot",
        {
            "id": bot_id,
            "operations": dump_json(list(assignment.operations)),
            "max_concurrency": assignment.max_concurrency,
            "paused": int(assignment.paused),
            "operator_operations": (
                None if operator_operations is None else dump_json(list(operator_operations))
            ),
            "operator_max_concurrency": chosen.max_concurrency,
            "command": update.command,
        },
    )
    return load_bot(tx, bot_id)


def deregister_bot(tx: Tx, bot_id: str, instance_id: str) -> tuple[str, ...] | None:
    if tx.one("deregister_bot", {"id": bot_id, "instance_id": instance_id}) is None:
        return None
    return tuple(row["id"] for row in release_jobs_of_bots(tx, [bot_id], BOT_DEREGISTERED))
