"""The bot verbs of the PostgreSQL store, each run inside one transaction (`Tx`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from coordinator.store.base import BotRecord, HeartbeatOutcome, RegisterOutcome, Registration
from coordinator.store.postgres.rows import bot_from_row
from coordinator.store.postgres.tx import Tx, clean_text
from coordinator.store.rules import (
    BOT_DEREGISTERED,
    INSTANCE_REPLACED,
    command_took_effect,
)

# Errors of jobs failed for good because their holder went away (as the SQLite store).
COMMANDS = frozenset({"drain", "quarantine", "release"})


async def release_jobs_of_bots(tx: Tx, bot_ids: Sequence[str], error: str) -> list[Any]:
    """End these bots' live attempts as `released`; queue each job again, or fail it with
    `error` when its attempts are spent. Returns rows of (id, op, state)."""
    if not bot_ids:
        return []
    rows = await tx.fetch("release_bot_jobs", list(bot_ids), tx.now, error)
    tx.changes.moved(rows)
    return rows


async def register_bot(tx: Tx, registration: Registration) -> RegisterOutcome:
    reg = replace(
        registration,
        bot_key=clean_text(registration.bot_key),
        instance_id=clean_text(registration.instance_id),
        name=clean_text(registration.name),
        version=clean_text(registration.version),
    )
    capabilities = list(reg.capabilities)
    max_concurrency = _max_concurrency(reg)
    bot_id = await tx.fetchval(
        "insert_bot", f"bot_{uuid.uuid4().hex}", reg.bot_key, reg.instance_id, reg.name,
        reg.version, capabilities, max_concurrency, tx.now, reg.token_hash,
        reg.token_expires_at, reg.lease_until, reg.resources, reg.constraints, reg.meta,
    )  # fmt: skip
    created = bot_id is not None
    released: list[Any] = []
    if not created:
        existing = await tx.fetchrow("lock_bot_by_key", reg.bot_key)
        bot_id = existing["id"]
        if existing["instance_id"] != reg.instance_id:
            # The old process is gone: its jobs go back now, not when their leases end.
            released = await release_jobs_of_bots(tx, [bot_id], INSTANCE_REPLACED)
        await tx.execute(
            "reregister_bot", bot_id, reg.instance_id, reg.name, reg.version, capabilities,
            max_concurrency, reg.token_hash, reg.token_expires_at, reg.lease_until,
            reg.resources, reg.constraints, reg.meta,
        )  # fmt: skip
    bot = bot_from_row(await tx.fetchrow("get_bot", bot_id))
    return RegisterOutcome(bot, created, tuple(row["id"] for row in released))


def _max_concurrency(registration: Registration) -> int:
    wanted = registration.constraints.get("max_concurrency")
    if isinstance(wanted, int) and not isinstance(wanted, bool) and wanted >= 1:
        return wanted
    return registration.default_max_concurrency


async def heartbeat(
    tx: Tx,
    bot_id: str,
    instance_id: str,
    running_job_ids: Sequence[str],
    lifecycle: str | None,
    metrics: dict[str, Any],
    bot_lease_ttl_s: float,
    job_lease_ttl_s: float,
) -> HeartbeatOutcome | None:
    # A replaced instance is fenced off like an unknown bot: it must not renew leases.
    locked = await tx.fetchrow("lock_bot_for_heartbeat", bot_id, clean_text(instance_id))
    if locked is None:
        return None
    effective = clean_text(lifecycle) if lifecycle is not None else locked["lifecycle"]
    command: str | None = locked["pending_command"]
    if command is not None and command_took_effect(command, effective):
        command = None
    ids = list(dict.fromkeys(running_job_ids))
    released: list[Any] = []
    if locked["last_heartbeat"] is not None:
        # Before heartbeat_bot, whose answer lists the jobs the bot still holds.
        released = await tx.fetch(
            "release_lost_jobs", bot_id, ids, locked["last_heartbeat"], tx.now
        )
        tx.changes.moved(released)
    lease_until = tx.now + timedelta(seconds=bot_lease_ttl_s)
    row = await tx.fetchrow(
        "heartbeat_bot", bot_id, tx.now, lease_until, effective, command, metrics
    )
    extended: dict[str, datetime] = {}
    cancel: list[str] = []
    if ids:
        for job in await tx.fetch("extend_leases", ids, bot_id, tx.now, job_lease_ttl_s):
            if job["cancelled"]:
                cancel.append(job["id"])
            else:
                extended[job["id"]] = job["lease_until"]
    return HeartbeatOutcome(
        bot_from_row(row), extended, tuple(cancel), command, tuple(r["id"] for r in released)
    )


def check_update(command: str | None, max_concurrency: int | None) -> None:
    """ValueError for an assignment or command no bot could follow."""
    if command is not None and command not in COMMANDS:
        raise ValueError(f"unknown bot command {command!r} (drain, quarantine or release)")
    if max_concurrency is not None and max_concurrency < 0:
        raise ValueError("max_concurrency must not be negative")


async def update_bot(
    tx: Tx,
    bot_id: str,
    operations: Sequence[str] | None,
    max_concurrency: int | None,
    paused: bool | None,
    command: str | None,
) -> BotRecord | None:
    wanted_ops = None if operations is None else list(operations)
    found = await tx.fetchval("update_bot", bot_id, wanted_ops, max_concurrency, paused, command)
    if found is None:
        return None
    bot = bot_from_row(await tx.fetchrow("get_bot", bot_id))
    if not bot.assignment.paused:
        # A new assignment or an unpause may let waiting claims through.
        tx.changes.ops.extend(bot.assignment.operations)
        tx.changes.counted = False
    return bot


async def deregister_bot(tx: Tx, bot_id: str, instance_id: str) -> tuple[str, ...] | None:
    # A stale instance cannot take its successor offline.
    if await tx.fetchval("deregister_bot", bot_id, clean_text(instance_id)) is None:
        return None
    released = await release_jobs_of_bots(tx, [bot_id], BOT_DEREGISTERED)
    return tuple(row["id"] for row in released)
