"""The named-query loader, and the two backends' SQL files naming the same statements."""

from __future__ import annotations

import pytest

from coordinator.store import rules
from coordinator.store.queries import load_queries, parse_queries


def test_parse_queries_by_name_keeps_their_comments() -> None:
    queries = parse_queries(
        "-- a file comment\n\n-- name: first\n-- what it does\nSELECT 1\n\n"
        "--name:second\nSELECT\n  2\n"
    )
    assert list(queries) == ["first", "second"]
    assert queries["first"] == "-- what it does\nSELECT 1"
    assert queries["second"] == "SELECT\n  2"
    assert len(queries) == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-- name: a\nSELECT 1\n-- name: a\nSELECT 2", "defined twice"),
        ("-- name: a\n-- only a comment\n", "empty"),
        ("SELECT 0\n-- name: a\nSELECT 1", "before the first"),
    ],
)
def test_parse_queries_rejects_bad_files(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_queries(text)


def test_missing_query_names_the_file() -> None:
    queries = parse_queries("-- name: a\nSELECT 1", source="x.sql")
    with pytest.raises(KeyError, match=r"x\.sql"):
        queries["b"]


@pytest.mark.parametrize("filename", ["sqlite_queries.sql", "postgres_queries.sql"])
def test_failure_texts_come_from_rules_not_sql(filename: str) -> None:
    """The texts live once, in rules.py; the statements take them as parameters."""
    texts = (rules.LEASE_EXPIRED, rules.BOT_LEASE_EXPIRED, rules.INSTANCE_REPLACED)
    texts += (rules.BOT_DEREGISTERED,)
    for name, sql in load_queries(filename).items():
        for text in texts:
            assert f"'{text}'" not in sql, f"{filename}: {name} spells {text!r} itself"


SQLITE_ONLY = {
    # Connection set-up: asyncpg takes its settings from the pool, not from statements.
    "pragma_busy_no_wait": "a lock wait bound per connection",
    "pragma_busy_timeout": "a lock wait bound per connection",
    "pragma_cache_size": "page cache per connection",
    "pragma_foreign_keys": "a connection setting in SQLite (off: PostgreSQL has none)",
    "pragma_journal_wal": "WAL is a file mode",
    "pragma_no_autocheckpoint": "the store checkpoints the WAL itself",
    "pragma_optimize": "planner statistics refreshed on close",
    "pragma_query_only": "read-only reader connections",
    "pragma_synchronous_normal": "durability is a connection setting",
    "pragma_temp_store_memory": "temporary tables in memory",
    "checkpoint_passive": "PostgreSQL checkpoints on its own",
    # Transactions: asyncpg opens and ends them itself.
    "begin_write": "BEGIN IMMEDIATE takes the write lock up front",
    "begin_read": "a read snapshot over several statements",
    "commit": "explicit transactions in autocommit mode",
    "rollback": "explicit transactions in autocommit mode",
    # No writable CTEs: PostgreSQL writes these rows in the statement that moves the job.
    "insert_attempts": "claim_jobs inserts the attempts in PostgreSQL",
    "end_attempt": "cancel_job and release_lost_jobs end them in PostgreSQL",
    "end_attempts": "write_reports ends them in PostgreSQL",
    "end_attempts_of_revoked_bot": "requeue_jobs_of_revoked_bot ends them in PostgreSQL",
    "end_attempts_of_bots": "release_bot_jobs ends them in PostgreSQL",
    "end_expired_attempts": "expire_jobs ends them in PostgreSQL",
    "end_unstarted_attempt": "release_jobs ends them in PostgreSQL",
    "delete_attempts_of_jobs": "delete_finished_jobs deletes them in PostgreSQL",
    "extend_attempt_lease": "extend_leases extends them in PostgreSQL",
    "cancelled_among": "extend_leases answers them in PostgreSQL",
    # An UPDATE in SQLite costs by the columns it sets: one statement per report outcome.
    "report_succeeded": "write_reports writes every outcome in one statement in PostgreSQL",
    "report_retried": "write_reports writes every outcome in one statement in PostgreSQL",
    "report_failed": "write_reports writes every outcome in one statement in PostgreSQL",
    # No arrays: PostgreSQL's bot rows carry their running job ids.
    "running_job_ids_of_bot": "get_bot carries them in PostgreSQL",
    "running_job_ids_all": "list_bots carries them in PostgreSQL",
    # INDEXED BY is fixed per statement; PostgreSQL's planner picks the index itself.
    "list_jobs_by_state": "list_jobs filters by NULL parameters in PostgreSQL",
    "list_jobs_by_op": "list_jobs filters by NULL parameters in PostgreSQL",
    "list_jobs_by_state_and_op": "list_jobs filters by NULL parameters in PostgreSQL",
    "read_logs_of_attempt": "read_logs filters by a NULL parameter in PostgreSQL",
    "delete_logs_of_jobs": "delete_finished_jobs deletes them in PostgreSQL",
    "delete_log_sizes_of_jobs": "delete_finished_jobs deletes them in PostgreSQL",
}

POSTGRES_ONLY = {
    "lock_migrations": "coordinators share a server: migrations take an advisory lock",
    "schema_exists": "a store lives in a schema of its own",
    "notify": "NOTIFY tells the other coordinators; SQLite tells this process only",
    "queued_operations": "wakes every waiter after the listening connection was lost",
    "write_reports": "a report batch's jobs, attempts and notices in one statement (JSON)",
    "ensure_log_sizes": "a row to lock before it is read (SQLite's writer holds the lock)",
    "dependency_states_locked": "a submit locks its dependencies (SQLite's writer holds the lock)",
    "lock_limits": "a claim locks the limits it uses (SQLite's writer holds the lock)",
    "limits_with_running": "a claim behind full limits saves round trips (SQLite has none)",
    "server_setting": "whether autovacuum reclaims what retention deletes (SQLite reuses pages)",
}


def test_both_files_name_the_same_statements_but_the_listed_ones() -> None:
    sqlite = set(load_queries("sqlite_queries.sql"))
    postgres = set(load_queries("postgres_queries.sql"))
    assert sqlite - postgres == set(SQLITE_ONLY)
    assert postgres - sqlite == set(POSTGRES_ONLY)
    assert all(SQLITE_ONLY.values()) and all(POSTGRES_ONLY.values())
