"""The bot verbs of the SQLite store, each run inside one write transaction (`Tx`)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from coordinator.store.base import BotRecord, HeartbeatOutcome, RegisterOutcome, Registration
from coordinator.store.rules import BOT_DEREGISTERED, INSTANCE_REPLACED, command_took_effect
from coordinator.store.sqlite.leases import release_jobs_of_bots, release_lost_jobs
from coordinator.store.sqlite.rows import (
    Tx,
    dump_json,
    from_us,
    id_list,
    load_bot,
    require_bot,
    to_us,
)

COMMANDS = frozenset({"drain", "quarantine", "release"})


def new_bot_id() -> str:
    return "bot_" + secrets.token_hex(8)


def _max_concurrency(registration: Registration) -> int:
    wanted = registration.constraints.get("max_concurrency")
    if isinstance(wanted, int) and not isinstance(wanted, bool) and wanted >= 1:
        return wanted
    return registration.default_max_concurrency


def register_bot(tx: Tx, registration: Registration) -> RegisterOutcome:
    existing = tx.one("bot_by_key", {"bot_key": registration.bot_key})
    fields: dict[str, Any] = {
        "bot_key": registration.bot_key,
        "instance_id": registration.instance_id,
        "name": registration.name,
        "version": registration.version,
        "capabilities": dump_json(registration.capabilities),
        "operations": dump_json(registration.capabilities),
        "max_concurrency": _max_concurrency(registration),
        "token_hash": registration.token_hash,
        "token_expires_at": to_us(registration.token_expires_at),
        "lease_until": to_us(registration.lease_until),
        "resources": dump_json(registration.resources),
        "constraints": dump_json(registration.constraints),
        "meta": dump_json(registration.meta),
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
            requeued, failed = release_jobs_of_bots(tx, [bot_id], INSTANCE_REPLACED)
            released = requeued + failed
        tx.run("reregister_bot", {**fields, "id": bot_id, "new_instance": new_instance})
    return RegisterOutcome(
        bot=require_bot(tx, bot_id),
        created=existing is None,
        released_job_ids=released,
    )


def heartbeat(
    tx: Tx,
    bot_id: str,
    instance_id: str,
    running_job_ids: Sequence[str],
    lifecycle: str | None,
    metrics: dict[str, Any],
    bot_lease_ttl_s: float,
    job_lease_ttl_s: float,
) -> HeartbeatOutcome | None:
    row = tx.one("bot_by_id", {"id": bot_id})
    # A replaced instance is fenced off like an unknown bot: it must not renew leases.
    if row is None or not row["online"] or row["instance_id"] != instance_id:
        return None
    effective_lifecycle = lifecycle if lifecycle is not None else row["lifecycle"]
    command: str | None = row["pending_command"]
    if command is not None and command_took_effect(command, effective_lifecycle):
        command = None
    tx.run(
        "heartbeat_bot",
        {
            "id": bot_id,
            "now": tx.now,
            "lease_until": tx.now + round(bot_lease_ttl_s * 1_000_000),
            "lifecycle": effective_lifecycle,
            "pending_command": command,
            "metrics": dump_json(metrics),
        },
    )
    ids = id_list(running_job_ids)
    released = release_lost_jobs(tx, bot_id, row["last_heartbeat"], ids)
    extended: dict[str, Any] = {}
    cancel: tuple[str, ...] = ()
    if running_job_ids:
        renewed = tx.all(
            "extend_job_leases",
            {"ids": ids, "bot_id": bot_id, "now": tx.now, "ttl_s": job_lease_ttl_s},
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
    return HeartbeatOutcome(
        bot=require_bot(tx, bot_id),
        extended=extended,
        cancel=cancel,
        command=command,
        released=released,
    )


def update_bot(
    tx: Tx,
    bot_id: str,
    operations: Sequence[str] | None,
    max_concurrency: int | None,
    paused: bool | None,
    command: str | None,
) -> BotRecord | None:
    if command is not None and command not in COMMANDS:
        raise ValueError(f"unknown bot command {command!r} (drain, quarantine or release)")
    if max_concurrency is not None and max_concurrency < 0:
        raise ValueError("max_concurrency must not be negative")
    tx.run(
        "update_bot_assignment",
        {
            "id": bot_id,
            "operations": None if operations is None else dump_json(list(operations)),
            "max_concurrency": max_concurrency,
            "paused": None if paused is None else int(paused),
            "command": command,
        },
    )
    return load_bot(tx, bot_id)


def deregister_bot(tx: Tx, bot_id: str, instance_id: str) -> tuple[str, ...] | None:
    row = tx.one("bot_by_id", {"id": bot_id})
    # A stale instance cannot take its successor offline.
    if row is None or row["instance_id"] != instance_id:
        return None
    tx.run("set_bot_offline", {"id": bot_id})
    requeued, failed = release_jobs_of_bots(tx, [bot_id], BOT_DEREGISTERED)
    return requeued + failed
