"""The SQLite store: the default, embedded backend (one file, zero set-up).

Exactly ONE writer connection per process, shared (never at the same time) between the
event loop and a dedicated writer thread; each verb is one transaction (see `tx` for
where each runs). Reads run on a second thread with a read-only connection, which WAL
lets proceed while the writer writes, and single-statement point reads on a third,
read-only connection on the event loop.

Durability: WAL with `synchronous=NORMAL` (see `sqlite_queries.sql`). A commit is in the
WAL file (in the OS page cache) before the verb returns, inline or not, so it survives a
crash or SIGKILL of the process; the last commits before a power loss or an OS crash may
be lost, and the file is never corrupted: the usual trade for a job queue whose
producers and bots retry. The writer does not checkpoint on commit, so no fsync ever
runs on the event loop: the `Checkpointer` runs PASSIVE checkpoints off the loop, every
few thousand rows written and at most half a second after a commit, which bounds what a
power loss can take in rows and in time.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from datetime import datetime

import coordinator.store.records as records
import coordinator.store.sqlite.bots as bots
import coordinator.store.sqlite.dependencies as dependencies
import coordinator.store.sqlite.joblogs as joblogs
import coordinator.store.sqlite.jobs as jobs
import coordinator.store.sqlite.leases as leases
import coordinator.store.sqlite.limits as limits
import coordinator.store.sqlite.reads as reads
import coordinator.store.sqlite.releases as releases
import coordinator.store.sqlite.reports as reports
import coordinator.store.sqlite.retention as retention
import coordinator.store.sqlite.revocation as revocation
import coordinator.store.sqlite.schedules as schedules
import coordinator.store.sqlite.tokens as tokens
from botfleet.clock import Clock
from coordinator.store.api_tokens import ApiTokenRecord, NewApiToken
from coordinator.store.base import RetryDelay, StoreError, StoreListener
from coordinator.store.changes import Changes
from coordinator.store.joblogs import LogAppend, LogAppendOutcome, LogPage, LogQuery
from coordinator.store.limits import LimitRecord, LimitSpec
from coordinator.store.releases import ReleaseInput, ReleaseOutcome
from coordinator.store.retention import Retention, SweepOutcome
from coordinator.store.rows import check_limit, decode_cursor
from coordinator.store.rules import check_bot_update
from coordinator.store.schedules import FiredSchedule, JobMaker, ScheduleRecord, ScheduleSpec
from coordinator.store.sqlite.connection import (
    CHECKPOINT_AFTER_CHANGES,
    CHECKPOINT_AFTER_S,
    Checkpointer,
    reader_on_loop,
)
from coordinator.store.sqlite.files import make_private
from coordinator.store.sqlite.notify import notify
from coordinator.store.sqlite.schema import open_connections
from coordinator.store.sqlite.tx import Transactions, Tx, WritePaths

logger = logging.getLogger(__name__)

# Inline on the loop only up to this many jobs submitted, claimed or reported at once:
# a larger transaction would hold the loop for longer than the hop to the thread costs.
INLINE_MAX_SUBMIT = 10
INLINE_MAX_ROWS = 32


class SQLiteStore:
    """`Store` on a SQLite file. The constructor does no I/O; `open()` connects and
    migrates."""

    def __init__(
        self,
        path: str,
        clock: Clock,
        retry_delay: RetryDelay,
        checkpoint_after_changes: int = CHECKPOINT_AFTER_CHANGES,
        checkpoint_after_s: float = CHECKPOINT_AFTER_S,
    ) -> None:
        if path == ":memory:" or path.startswith("file::memory:"):
            # The writer and reader threads each open the path: they must share a file.
            raise ValueError("the SQLite store needs a file path, not an in-memory database")
        self._path = path
        self._clock = clock
        self._retry_delay = retry_delay
        self._checkpoint_after = (checkpoint_after_changes, checkpoint_after_s)
        self._listener: StoreListener | None = None
        self._tx: Transactions | None = None
        self._checkpointer: Checkpointer | None = None
        self._write_paths = WritePaths()

    # ---------------------------------------------------------------- life

    async def open(self) -> None:
        if self._tx is not None:
            return
        try:
            make_private(self._path)
        except OSError as exc:
            raise StoreError(f"SQLite {self._path}: {exc}") from exc
        queries, writer, reader = await open_connections(self._path, self._clock)
        every, every_s = self._checkpoint_after
        self._checkpointer = Checkpointer(
            writer, queries, self._path, every, copier=reader, every_s=every_s
        )
        loop_reader: sqlite3.Connection | None = None
        try:
            loop_reader = reader_on_loop(self._path, queries)
        except sqlite3.Error as error:  # the reader thread serves every read then
            logger.warning("SQLite %s: no reader on the event loop: %s", self._path, error)
        self._tx = Transactions(
            path=self._path,
            clock=self._clock,
            retry_delay=self._retry_delay,
            queries=queries,
            writer=writer,
            reader=reader,
            loop_reader=loop_reader,
            committed=self._committed,
            write_paths=self._write_paths,
            on_jobs_ended=dependencies.settle_dependants,
            on_places_freed=limits.wake_for_freed,
        )

    async def close(self) -> None:
        tx, checkpointer = self._tx, self._checkpointer
        if tx is None or checkpointer is None:
            return
        self._tx = None
        self._checkpointer = None
        if tx.loop_reader is not None:
            tx.loop_reader.close()
        await checkpointer.close()  # its copy phase runs on the reader thread
        await tx.reader.call(tx.reader.disconnect, tx.queries, ())
        # The writer closes last: the last connection to close checkpoints the whole WAL
        # and removes it (on the writer thread).
        final = ("pragma_busy_timeout", "pragma_optimize")
        await tx.writer.call(tx.writer.disconnect, tx.queries, final)
        # Both threads are idle now (their last job just ran), so these joins are quick.
        tx.reader.shutdown()
        tx.writer.shutdown()

    @property
    def checkpointer(self) -> Checkpointer | None:
        """The WAL checkpointer while the store is open (for tests and diagnosis)."""
        return self._checkpointer

    @property
    def write_paths(self) -> WritePaths:
        """Where the write transactions ran (for tests and diagnosis)."""
        return self._write_paths

    async def ping(self) -> None:
        await self._open().read(lambda tx: tx.one("ping"))

    async def housekeeping_warnings(self, policy: Retention) -> list[str]:
        return []  # the pages deleted rows leave are reused by the next inserts

    def set_listener(self, listener: StoreListener) -> None:
        self._listener = listener

    def _open(self) -> Transactions:
        if self._tx is None:
            raise StoreError("the SQLite store is not open")
        return self._tx

    def _committed(self, changes: Changes, total_changes: int) -> None:
        notify(self._listener, changes)
        if self._checkpointer is not None:
            self._checkpointer.note(total_changes)

    # ---------------------------------------------------------------- bots

    async def register_bot(self, registration: records.Registration) -> records.RegisterOutcome:
        return await self._open().write(lambda tx: bots.register_bot(tx, registration))

    async def get_bot(self, bot_id: str) -> records.BotRecord | None:
        return await self._open().read(lambda tx: reads.load_bot(tx, bot_id))

    async def list_bots(self) -> list[records.BotRecord]:
        return await self._open().read(reads.list_bots)

    async def online_bot_routes(self) -> list[records.BotRoute]:
        return await self._open().read(reads.online_bot_routes)

    async def heartbeat(self, beat: records.HeartbeatInput) -> records.HeartbeatOutcome | None:
        return await self._open().write(lambda tx: bots.heartbeat(tx, beat))

    async def update_bot(self, bot_id: str, update: records.BotUpdate) -> records.BotRecord | None:
        check_bot_update(update)
        return await self._open().write(lambda tx: bots.update_bot(tx, bot_id, update))

    async def deregister_bot(self, bot_id: str, instance_id: str) -> tuple[str, ...] | None:
        return await self._open().write(lambda tx: bots.deregister_bot(tx, bot_id, instance_id))

    async def revoke_bot(self, bot_id: str) -> records.RevokeOutcome | None:
        # Not inline: a bot may hold many jobs.
        return await self._open().write(lambda tx: revocation.revoke_bot(tx, bot_id), inline=False)

    async def allow_bot(self, bot_id: str) -> records.BotRecord | None:
        return await self._open().write(lambda tx: revocation.allow_bot(tx, bot_id))

    async def forget_bot(self, bot_id: str) -> records.ForgetOutcome:
        return await self._open().write(lambda tx: revocation.forget_bot(tx, bot_id))

    # ---------------------------------------------------------------- jobs

    async def submit_jobs(self, new: Sequence[records.NewJob]) -> list[records.SubmitOutcome]:
        if not new:
            return []
        inline = len(new) <= INLINE_MAX_SUBMIT
        return await self._open().write(lambda tx: jobs.submit_jobs(tx, new), inline)

    async def claim_jobs(self, claim: records.ClaimInput) -> list[records.JobRecord] | None:
        inline = claim.limit <= INLINE_MAX_ROWS
        return await self._open().write(lambda tx: jobs.claim_jobs(tx, claim), inline)

    async def report(
        self, bot_id: str, batch: Sequence[records.ReportInput]
    ) -> list[records.ReportOutcome]:
        if not batch:
            return []
        inline = len(batch) <= INLINE_MAX_ROWS
        return await self._open().write(lambda tx: reports.report(tx, bot_id, batch), inline)

    async def report_and_claim(
        self, claim: records.ClaimInput, batch: Sequence[records.ReportInput]
    ) -> tuple[list[records.ReportOutcome], list[records.JobRecord] | None]:
        def verb(tx: Tx) -> tuple[list[records.ReportOutcome], list[records.JobRecord] | None]:
            outcomes = reports.report(tx, claim.bot_id, batch) if batch else []
            return outcomes, jobs.claim_jobs(tx, claim)

        return await self._open().write(verb, max(len(batch), claim.limit) <= INLINE_MAX_ROWS)

    async def set_progress(
        self, bot_id: str, progress: records.ProgressInput
    ) -> records.ReportOutcome:
        return await self._open().write(lambda tx: reports.set_progress(tx, bot_id, progress))

    async def release_jobs(
        self, bot_id: str, items: Sequence[ReleaseInput]
    ) -> list[ReleaseOutcome]:
        if not items:
            return []
        inline = len(items) <= INLINE_MAX_ROWS
        return await self._open().write(lambda tx: releases.release_jobs(tx, bot_id, items), inline)

    async def get_job(self, job_id: str) -> records.JobRecord | None:
        return await self._open().point_read(lambda tx: reads.get_job(tx, job_id))

    async def list_jobs(
        self, query: records.JobQuery
    ) -> tuple[list[records.JobRecord], str | None]:
        check_limit(query.limit)
        decode_cursor(query.cursor)  # a malformed cursor fails before any I/O
        return await self._open().read(lambda tx: reads.list_jobs(tx, query))

    async def list_attempts(self, job_id: str) -> list[records.AttemptRecord]:
        return await self._open().read(lambda tx: reads.list_attempts(tx, job_id))

    async def pending_dependencies(self, job_id: str) -> list[tuple[str, str]]:
        return await self._open().read(lambda tx: dependencies.pending_dependencies(tx, job_id))

    async def cancel_job(
        self, job_id: str
    ) -> tuple[records.ReportOutcome, records.JobRecord | None]:
        return await self._open().write(lambda tx: jobs.cancel_job(tx, job_id))

    async def put_limit(self, spec: LimitSpec) -> None:
        await self._open().write(lambda tx: limits.put_limit(tx, spec))

    async def delete_limit(self, name: str) -> bool:
        return await self._open().write(lambda tx: limits.delete_limit(tx, name))

    async def list_limits(self) -> list[LimitRecord]:
        return await self._open().read(limits.list_limits)

    async def seconds_until_tokens(self, operations: Sequence[str]) -> float | None:
        return await self._open().read(lambda tx: limits.seconds_until_tokens(tx, operations))

    async def queued_by_limit(self) -> dict[str, int]:
        return await self._open().read(limits.queued_by_limit)

    async def limit_names(self) -> set[str]:
        return await self._open().read(limits.limit_names)

    async def retry_job(
        self, job_id: str
    ) -> tuple[records.ReportOutcome, records.JobRecord | None]:
        return await self._open().write(lambda tx: jobs.retry_job(tx, job_id))

    async def stats(self, window_s: int = 60) -> records.StatsRecord:
        return await self._open().read(lambda tx: reads.stats(tx, window_s))

    async def next_run_at(
        self, operations: Sequence[str], bot_id: str | None = None
    ) -> datetime | None:
        if not operations:
            return None
        tx = self._open()
        return await tx.point_read(lambda t: reads.next_run_at(t, operations, bot_id))

    async def claim_outlook(
        self, bot_id: str, operations: Sequence[str], claim_id: str | None = None
    ) -> records.ClaimOutlook:
        tx = self._open()
        return await tx.point_read(lambda t: reads.claim_outlook(t, bot_id, operations, claim_id))

    # ---------------------------------------------------------------- role tokens

    async def create_api_token(self, token: NewApiToken) -> ApiTokenRecord | None:
        return await self._open().write(lambda tx: tokens.create_api_token(tx, token))

    async def api_token_by_hash(self, token_hash: str) -> ApiTokenRecord | None:
        return await self._open().point_read(lambda tx: reads.api_token_by_hash(tx, token_hash))

    async def list_api_tokens(self) -> list[ApiTokenRecord]:
        return await self._open().read(reads.list_api_tokens)

    async def revoke_api_token(self, token_id: str) -> ApiTokenRecord | None:
        return await self._open().write(lambda tx: tokens.revoke_api_token(tx, token_id))

    async def touch_api_token(self, token_id: str, stale_before: datetime) -> None:
        await self._open().write(lambda tx: tokens.touch_api_token(tx, token_id, stale_before))

    # ---------------------------------------------------------------- job logs

    async def append_logs(self, batches: Sequence[LogAppend]) -> list[LogAppendOutcome]:
        inline = sum(len(batch.lines) for batch in batches) <= INLINE_MAX_ROWS
        return await self._open().write(lambda tx: joblogs.append_logs(tx, batches), inline)

    async def read_logs(self, query: LogQuery) -> LogPage | None:
        return await self._open().read(lambda tx: joblogs.read_logs(tx, query))

    # ---------------------------------------------------------------- schedules

    async def put_schedule(self, spec: ScheduleSpec) -> tuple[ScheduleRecord, bool]:
        return await self._open().write(lambda tx: schedules.put_schedule(tx, spec))

    async def list_schedules(self) -> list[ScheduleRecord]:
        return await self._open().read(schedules.list_schedules)

    async def delete_schedule(self, name: str) -> bool:
        return await self._open().write(lambda tx: schedules.delete_schedule(tx, name))

    async def fire_schedules(self, make_job: JobMaker, limit: int) -> list[FiredSchedule]:
        inline = limit <= INLINE_MAX_SUBMIT
        return await self._open().write(
            lambda tx: schedules.fire_schedules(tx, make_job, limit), inline
        )

    async def next_schedule_due(self) -> datetime | None:
        return await self._open().point_read(schedules.next_schedule_due)

    # ---------------------------------------------------------------- reaper

    async def expire_leases(self) -> records.ExpiryOutcome:
        # A pass may release many jobs at once: always on the writer thread.
        return await self._open().write(lambda tx: leases.expire_leases(tx), inline=False)

    async def sweep(self, policy: Retention) -> SweepOutcome:
        # A batch of deletions is too long for the event loop: on the writer thread.
        return await self._open().write(lambda tx: retention.sweep(tx, policy), inline=False)
