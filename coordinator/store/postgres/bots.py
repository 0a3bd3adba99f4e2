"""The bot verbs of the PostgreSQL store, each run inside one transaction (`Tx`)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import coordinator.store.records as records
from coordinator.store.base import BotRevoked
from coordinator.store.postgres.leases import release_jobs_of_bots, release_lost_jobs
from coordinator.store.postgres.rows import bot_from_row
from coordinator.store.postgres.tx import Tx
from coordinator.store.rows import clean_text
from coordinator.store.rules import (
    BOT_DEREGISTERED,
    INSTANCE_REPLACED,
    OperatorChoices,
    after_heartbeat,
    assignment_of,
    choices_after,
    max_concurrency_of,
)


def operator_choices(row: Any) -> OperatorChoices:
    """The operator's choices kept in a bot row (`bot_by_key`, `bot_assignment`)."""
    operations = row["operator_operations"]
    return OperatorChoices(
        operations=None if operations is None else tuple(operations),
        max_concurrency=row["operator_max_concurrency"],
        paused=row["paused"],
    )


async def register_bot(tx: Tx, registration: records.Registration) -> records.RegisterOutcome:
    reg = replace(
        registration,
        bot_key=clean_text(registration.bot_key),
        instance_id=clean_text(registration.instance_id),
        name=clean_text(registration.name),
        version=clean_text(registration.version),
    )
    capabilities = list(reg.capabilities)
    max_concurrency = max_concurrency_of(reg)
    bot_id = await tx.fetchval(
        "insert_bot", f"bot_{uuid.uuid4().hex}", reg.bot_key, reg.instance_id, reg.name,
        reg.version, capabilities, max_concurrency, tx.now, reg.token_hash,
        reg.token_expires_at, reg.lease_until, reg.resources, reg.constraints, reg.meta,
        reg.labels or None,
    )  # fmt: skip
    created = bot_id is not None
    released: list[Any] = []
    if not created:
        existing = await tx.fetchrow("bot_by_key", reg.bot_key)
        bot_id = existing["id"]
        if existing["revoked_at"] is not None:
            raise BotRevoked(bot_id)
        if existing["instance_id"] != reg.instance_id:
            # The old process is gone: its jobs go back now, not when their leases end.
            released = await release_jobs_of_bots(tx, [bot_id], INSTANCE_REPLACED)
        assignment = assignment_of(capabilities, max_concurrency, operator_choices(existing))
        await tx.execute(
            "reregister_bot", bot_id, reg.instance_id, reg.name, reg.version, capabilities,
            max_concurrency, reg.token_hash, reg.token_expires_at, reg.lease_until,
            reg.resources, reg.constraints, reg.meta, list(assignment.operations),
            assignment.max_concurrency, tx.now, reg.labels or None,
        )  # fmt: skip
    bot = bot_from_row(await tx.fetchrow("get_bot", bot_id))
    return records.RegisterOutcome(bot, created, tuple(row["id"] for row in released))


async def heartbeat(tx: Tx, beat: records.HeartbeatInput) -> records.HeartbeatOutcome | None:
    bot_id = beat.bot_id
    locked = await tx.fetchrow("bot_for_heartbeat", bot_id, clean_text(beat.instance_id))
    if locked is None:
        return None
    lifecycle, command = after_heartbeat(
        clean_text(beat.lifecycle), locked["lifecycle"], locked["pending_command"]
    )
    ids = list(dict.fromkeys(beat.running_job_ids))
    # Before heartbeat_bot, whose answer lists the jobs the bot still holds.
    released = await release_lost_jobs(tx, bot_id, ids, locked["last_heartbeat"])
    lease_until = tx.now + timedelta(seconds=beat.bot_lease_ttl_s)
    row = await tx.fetchrow(
        "heartbeat_bot", bot_id, tx.now, lease_until, lifecycle, command, beat.metrics,
        list(beat.held_job_ids) or None,
    )  # fmt: skip
    extended: dict[str, datetime] = {}
    cancel: list[str] = []
    if ids:
        held = await tx.fetch(
            "extend_leases", ids, bot_id, tx.now, beat.job_lease_ttl_s, beat.default_timeout_s
        )
        for job in held:
            if job["cancelled"]:
                cancel.append(job["id"])
            else:
                extended[job["id"]] = job["lease_until"]
    return records.HeartbeatOutcome(bot_from_row(row), extended, tuple(cancel), command, released)


async def update_bot(tx: Tx, bot_id: str, update: records.BotUpdate) -> records.BotRecord | None:
    row = await tx.fetchrow("bot_assignment", bot_id)
    if row is None:
        return None
    chosen = choices_after(operator_choices(row), update)
    assignment = assignment_of(row["capabilities"], row["bot_max_concurrency"], chosen)
    chosen_operations = None if chosen.operations is None else list(chosen.operations)
    await tx.execute(
        "update_bot", bot_id, list(assignment.operations), assignment.max_concurrency,
        assignment.paused, update.command, chosen_operations, chosen.max_concurrency,
    )  # fmt: skip
    bot = bot_from_row(await tx.fetchrow("get_bot", bot_id))
    if not bot.assignment.paused:
        # A new assignment or an unpause may let waiting claims through.
        tx.changes.ops.extend(bot.assignment.operations)
        tx.changes.counted = False
    return bot


async def deregister_bot(tx: Tx, bot_id: str, instance_id: str) -> tuple[str, ...] | None:
    if await tx.fetchval("deregister_bot", bot_id, clean_text(instance_id)) is None:
        return None
    released = await release_jobs_of_bots(tx, [bot_id], BOT_DEREGISTERED)
    return tuple(row["id"] for row in released)
