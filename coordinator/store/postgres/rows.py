"""asyncpg rows to store records (and the connection codecs that make them plain Python)."""

from __future__ import annotations

from typing import Any

import msgspec

from coordinator.store.base import AssignmentRecord, AttemptRecord, BotRecord, JobRecord


async def init_connection(connection: Any) -> None:
    """`json` columns travel as Python values (encoded with msgspec)."""
    await connection.set_type_codec(
        "json",
        schema="pg_catalog",
        encoder=lambda value: msgspec.json.encode(value).decode(),
        decoder=msgspec.json.decode,
        format="text",
    )


def job_from_row(row: Any) -> JobRecord:
    return JobRecord(
        id=row["id"],
        op=row["op"],
        payload=row["payload"],
        state=row["state"],
        priority=row["priority"],
        attempt=row["attempt"],
        max_attempts=row["max_attempts"],
        created_at=row["created_at"],
        run_at=row["run_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        lease_until=row["lease_until"],
        attempts_used=row["attempt"] - row["attempt_base"],
        bot_id=row["bot_id"],
        result=row["result"],
        error=row["error"],
        progress=row["progress"],
        progress_message=row["progress_message"],
        timeout_s=row["timeout_s"],
        idempotency_key=row["idempotency_key"],
        metadata=row["metadata"],
    )


def bot_from_row(row: Any) -> BotRecord:
    return BotRecord(
        id=row["id"],
        bot_key=row["bot_key"],
        instance_id=row["instance_id"],
        name=row["name"],
        version=row["version"],
        capabilities=tuple(row["capabilities"]),
        assignment=AssignmentRecord(
            operations=tuple(row["operations"]),
            max_concurrency=row["max_concurrency"],
            paused=row["paused"],
        ),
        online=row["online"],
        registered_at=row["registered_at"],
        token_hash=row["token_hash"],
        token_expires_at=row["token_expires_at"],
        lease_until=row["lease_until"],
        last_heartbeat=row["last_heartbeat"],
        lifecycle=row["lifecycle"],
        pending_command=row["pending_command"],
        quarantined=bool(row["quarantined"]),
        running=tuple(row["running"]),
        resources=row["resources"],
        constraints=row["constraints"],
        meta=row["meta"],
        metrics=row["metrics"],
    )


def attempt_from_row(row: Any) -> AttemptRecord:
    return AttemptRecord(
        job_id=row["job_id"],
        attempt=row["attempt"],
        bot_id=row["bot_id"],
        claimed_at=row["claimed_at"],
        lease_until=row["lease_until"],
        ended_at=row["ended_at"],
        outcome=row["outcome"],
    )
