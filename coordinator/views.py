"""Store records -> wire messages (times as RFC 3339 strings)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

from botfleet.clock import to_rfc3339
from botfleet.protocol import messages as m
from coordinator.config import ServerConfig
from coordinator.store.base import (
    ApiTokenRecord,
    AssignmentRecord,
    BotRecord,
    JobRecord,
    StatsRecord,
)

JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else to_rfc3339(moment)


def assignment(record: AssignmentRecord) -> m.Assignment:
    return m.Assignment(
        operations=list(record.operations),
        max_concurrency=record.max_concurrency,
        paused=record.paused,
    )


def bot_config(config: ServerConfig) -> m.BotConfig:
    return m.BotConfig(
        heartbeat_interval=config.heartbeat_interval_s,
        claim_batch_size=config.claim_batch_size,
        job_lease_ttl=config.job_lease_ttl_s,
        bot_lease_ttl=config.bot_lease_ttl_s,
        features=list(config.features),
        max_body_bytes=config.max_body_bytes,
    )


def claimed_jobs(jobs: Iterable[JobRecord], default_timeout_s: float | None) -> list[m.ClaimedJob]:
    """`jobs` as handed to a bot; one without its own timeout gets `default_timeout_s`.
    One claim's jobs share their lease and often their creation time: each moment is
    formatted once."""
    texts: dict[datetime, str] = {}

    def text(moment: datetime) -> str:
        found = texts.get(moment)
        if found is None:
            found = texts[moment] = to_rfc3339(moment)
        return found

    claimed = []
    for job in jobs:
        metadata: dict[str, Any] = dict(job.metadata)
        metadata["priority"] = job.priority
        metadata["created_at"] = text(job.created_at)
        lease_until = job.lease_until
        claimed.append(
            m.ClaimedJob(
                id=job.id,
                op=job.op,
                payload=job.payload,
                lease_until=None if lease_until is None else text(lease_until),
                attempt=job.attempt,
                timeout_s=default_timeout_s if job.timeout_s is None else job.timeout_s,
                metadata=metadata,
            )
        )
    return claimed


def job_view(job: JobRecord, waiting_for: str | None = None) -> m.JobView:
    """`waiting_for`: what the job waits for, when the caller looked it up; else a
    queued job that waits for dependencies says how many."""
    if waiting_for is None and job.state == "queued" and job.waiting_on > 0:
        waiting_for = f"waiting for {job.waiting_on} unfinished dependencies"
    return m.JobView(
        id=job.id,
        op=job.op,
        payload=job.payload,
        state=cast(m.JobState, job.state),
        attempt=job.attempt,
        max_attempts=job.max_attempts,
        attempts_used=job.attempts_used,
        priority=job.priority,
        result=job.result,
        error=job.error,
        bot_id=job.bot_id,
        created_at=to_rfc3339(job.created_at),
        run_at=_time(job.run_at),
        started_at=_time(job.started_at),
        finished_at=_time(job.finished_at),
        lease_until=_time(job.lease_until),
        progress=job.progress,
        progress_message=job.progress_message,
        timeout_s=job.timeout_s,
        idempotency_key=job.idempotency_key,
        metadata=job.metadata,
        expires_at=_time(job.expires_at),
        submitted_by=job.submitted_by,
        requires=job.requires or {},
        limits=list(job.limits),
        waiting_for=waiting_for,
        after=list(job.after),
    )


def token_view(token: ApiTokenRecord) -> m.TokenView:
    return m.TokenView(
        id=token.id,
        name=token.name,
        role=cast(m.Role, token.role),
        created_at=to_rfc3339(token.created_at),
        expires_at=_time(token.expires_at),
        last_used_at=_time(token.last_used_at),
        revoked_at=_time(token.revoked_at),
    )


def bot_view(bot: BotRecord) -> m.BotView:
    metrics = bot.metrics
    return m.BotView(
        id=bot.id,
        name=bot.name,
        bot_key=bot.bot_key,
        instance_id=bot.instance_id,
        state="online" if bot.online else "offline",
        lifecycle=bot.lifecycle,
        version=bot.version,
        capabilities=list(bot.capabilities),
        assignment=assignment(bot.assignment),
        running=list(bot.running),
        held=list(bot.held),
        pending_command=cast(m.BotCommand | None, bot.pending_command),
        registered_at=to_rfc3339(bot.registered_at),
        last_heartbeat=_time(bot.last_heartbeat),
        lease_until=_time(bot.lease_until),
        meta=bot.meta,
        metrics=(
            m.BotMetrics(cpu=float(metrics.get("cpu", 0.0)), mem_mb=float(metrics.get("mem_mb", 0)))
            if metrics
            else None
        ),
        revoked_at=_time(bot.revoked_at),
        labels=bot.labels,
    )


def stats(record: StatsRecord, now: datetime) -> m.Stats:
    finished = record.succeeded_last_window + record.failed_last_window
    oldest = record.oldest_queued_at
    return m.Stats(
        jobs={state: record.jobs_by_state.get(state, 0) for state in JOB_STATES},
        jobs_by_op=record.jobs_by_op,
        bots={"online": 0, "offline": 0, **record.bots_by_state},
        throughput=m.Throughput(
            window_s=record.window_s,
            succeeded=record.succeeded_last_window,
            failed=record.failed_last_window,
            per_second=round(finished / record.window_s, 3) if record.window_s else 0.0,
        ),
        oldest_queued_age_s=None if oldest is None else max(0.0, (now - oldest).total_seconds()),
    )
