"""Rows to records: the batch reader of a claim's rows reads what the named one does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from coordinator.store.rows import Decode, job_from_row, jobs_from_rows

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DECODE = Decode(moment=lambda us: EPOCH + timedelta(microseconds=us), json=lambda text: {"j": text})


def _row(index: int) -> dict[str, Any]:
    """Every column set, each to a value no other column has."""
    return {
        "seq": index, "id": f"job-{index}", "op": "sum", "payload": "p", "state": "running",
        "priority": 7, "attempt": 5, "attempt_base": 2, "max_attempts": 9,
        "created_at": 1, "run_at": 2, "started_at": 3, "finished_at": 4, "lease_until": 5,
        "bot_id": "bot", "result": "r", "result_attempt": 4, "error": "e", "progress": 0.5,
        "progress_message": "half", "timeout_s": 30.0, "idempotency_key": "k",
        "metadata": "m", "expires_at": 6, "submitted_by": "alice", "requires": "q",
        "waiting_on": 3, "limit_key": "a,b", "after_ids": '["j0"]', "seen_at": None,
    }  # fmt: skip


def test_a_batch_of_rows_reads_as_each_row_by_name() -> None:
    found = [_row(1), _row(2)]
    found[1].update(
        started_at=None,
        finished_at=None,
        result=None,
        requires=None,
        limit_key=None,
        after_ids=None,
    )
    keys = list(found[0])
    rows = [tuple(row.values()) for row in found]  # by position only, as a driver's rows
    assert jobs_from_rows(rows, keys, DECODE) == [job_from_row(row, DECODE) for row in found]
    assert jobs_from_rows([], keys, DECODE) == []
