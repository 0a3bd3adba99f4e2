"""The SQLite schema: migrations applied once and whole, and every statement compiling
and using its index."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from coordinator.store.migrations import Migration, load_migrations
from coordinator.store.queries import load_queries
from coordinator.store.sqlite.schema import apply_sqlite_migrations, split_statements

NOW_US = 1_768_816_800_000_000


def test_split_statements_keeps_trigger_bodies_whole() -> None:
    script = (
        "-- header\nCREATE TABLE t (x INTEGER);\n"
        "CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN\n  SELECT 1;\n  SELECT 2;\nEND;\n"
        "-- trailing comment\n"
    )
    statements = split_statements(script)
    assert len(statements) == 2
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")
    with pytest.raises(ValueError, match="incomplete"):
        split_statements("CREATE TABLE t (x INTEGER)")


def _migrated(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    apply_sqlite_migrations(
        conn, load_queries("sqlite_queries.sql"), load_migrations("sqlite_migrations"), NOW_US
    )
    return conn


def test_migrations_apply_once(tmp_path: Path) -> None:
    conn = _migrated(tmp_path / "db")
    try:
        queries = load_queries("sqlite_queries.sql")
        migrations = load_migrations("sqlite_migrations")
        assert apply_sqlite_migrations(conn, queries, migrations, NOW_US) == []
        rows = conn.execute("SELECT version, name, applied_at FROM schema_version").fetchall()
        assert rows == [(m.version, m.name, NOW_US) for m in migrations]
    finally:
        conn.close()


def test_a_failing_migration_leaves_the_previous_version(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "db", isolation_level=None)
    try:
        queries = load_queries("sqlite_queries.sql")
        good = Migration(1, "good", "CREATE TABLE a (x INTEGER);")
        bad = Migration(2, "bad", "CREATE TABLE b (x INTEGER);\nCREATE TABLE a (y INTEGER);")
        with pytest.raises(sqlite3.OperationalError):
            apply_sqlite_migrations(conn, queries, [good, bad], NOW_US)
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_version")]
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert versions == [1] and "b" not in tables
    finally:
        conn.close()


def test_every_sqlite_query_compiles(tmp_path: Path) -> None:
    conn = _migrated(tmp_path / "db")
    try:
        for name, sql in load_queries("sqlite_queries.sql").items():
            params = dict.fromkeys(re.findall(r":([a-z_]+)", sql))
            try:
                conn.execute("EXPLAIN " + sql, params).fetchall()
            except sqlite3.Error as error:
                pytest.fail(f"query {name!r} does not compile: {error}")
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("claim_jobs", "INDEX jobs_claim (op=?)"),
        ("next_run_at", "INDEX jobs_queued_run_at (op=?)"),
        ("claim_outlook", "INDEX jobs_queued_run_at (op=?)"),
        ("end_expired_attempts", "INDEX jobs_running_lease (lease_until<?)"),
        ("expire_jobs", "INDEX jobs_running_lease (lease_until<?)"),
        ("end_attempts_of_bots", "INDEX jobs_running_bot (bot_id=?)"),
        ("release_bot_jobs", "INDEX jobs_running_bot (bot_id=?)"),
        ("release_lost_jobs", "INDEX jobs_running_bot (bot_id=?)"),
        ("claim_jobs", "INDEX jobs_running_bot (bot_id=?)"),
        ("extend_leases", "(id=?)"),
        ("cancelled_among", "(id=?)"),
        ("jobs_for_report", "(id=?)"),
        ("list_jobs_by_state", "INDEX jobs_state_seq (state=? AND seq<?)"),
        ("list_jobs_by_op", "INDEX jobs_op_seq (op=? AND seq<?)"),
        ("finished_since", "INDEX jobs_finished (finished_at>?)"),
        ("expire_bots", "INDEX bots_online_lease (lease_until<?)"),
        ("jobs_by_idempotency_key", "INDEX jobs_idempotency_key (idempotency_key=?)"),
        ("jobs_of_claim", "INDEX attempts_claim_id (claim_id=?)"),
        ("claim_outlook", "INDEX attempts_claim_id (claim_id=?)"),
        # A job's log, by cursor, even with the cap's worth of lines.
        ("read_logs", "PRIMARY KEY (job_id=? AND last_seq>?)"),
        ("read_logs_of_attempt", "PRIMARY KEY (job_id=? AND last_seq>?)"),
        ("delete_logs_of_jobs", "PRIMARY KEY (job_id=?)"),
        ("lock_log_sizes", "PRIMARY KEY (job_id=?)"),
    ],
)
@pytest.mark.parametrize("analyzed", [False, True], ids=["fresh", "analyzed"])
def test_hot_queries_use_their_index(
    tmp_path: Path, query: str, expected: str, analyzed: bool
) -> None:
    """No scan of a big table: on a fresh database (no planner statistics), and after
    ANALYZE of a typical one (mostly finished, keyless jobs; `PRAGMA optimize` at close
    writes such statistics)."""
    conn = _migrated(tmp_path / "db")
    try:
        if analyzed:
            _fill_typical(conn)
            conn.execute("ANALYZE")
        sql = load_queries("sqlite_queries.sql")[query]
        params = dict.fromkeys(re.findall(r":([a-z_]+)", sql))
        plan = " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
        assert expected in plan, plan
    finally:
        conn.close()


def _fill_typical(conn: sqlite3.Connection) -> None:
    """Many finished jobs, some queued and running, few idempotency keys, a few bots."""
    conn.execute("BEGIN")
    for n in range(4):
        conn.execute(
            "INSERT INTO bots (id, bot_key, instance_id, name, version, capabilities,"
            " operations, max_concurrency, registered_at, token_hash, token_expires_at,"
            " lease_until, resources, constraints, meta, metrics) VALUES"
            " (?, ?, 'i', 'n', '1.0.0', '[]', '[]', 10, 0, 'h', 0, ?, '{}', '{}', '{}', '{}')",
            (f"bot_{n}", f"key{n}", NOW_US),
        )
    rows = []
    for n in range(3000):
        state = "succeeded" if n < 2500 else "queued" if n < 2900 else "running"
        rows.append(
            (
                f"job_{n:016x}",
                ("sum", "subtract")[n % 2],
                state,
                NOW_US,
                NOW_US + n if state == "succeeded" else None,
                NOW_US + 10**9 if state == "running" else None,
                f"bot_{n % 4}" if state != "queued" else None,
                "key-1" if n == 7 else None,
            )
        )
    conn.executemany(
        "INSERT INTO jobs (id, op, payload, state, max_attempts, created_at, run_at,"
        " finished_at, lease_until, bot_id, idempotency_key)"
        " VALUES (?, ?, '{}', ?, 3, ?, 0, ?, ?, ?, ?)",
        rows,
    )
    conn.execute("COMMIT")


def test_upgrade_keeps_a_pending_quarantine(tmp_path: Path) -> None:
    """Version 2: a quarantine still pending at the upgrade holds the bot's claims."""
    queries = load_queries("sqlite_queries.sql")
    migrations = load_migrations("sqlite_migrations")
    conn = sqlite3.connect(tmp_path / "db", isolation_level=None)
    try:
        apply_sqlite_migrations(conn, queries, migrations[:1], NOW_US)
        for n, command in enumerate(("quarantine", "drain", None)):
            conn.execute(
                "INSERT INTO bots (id, bot_key, instance_id, name, version, capabilities,"
                " operations, max_concurrency, registered_at, token_hash, token_expires_at,"
                " lease_until, pending_command, resources, constraints, meta, metrics)"
                " VALUES (?, ?, 'i', 'n', '1.0.0', '[]', '[]', 1, 0, 'h', 0, 0, ?,"
                " '{}', '{}', '{}', '{}')",
                (f"bot_{n}", f"key{n}", command),
            )
        apply_sqlite_migrations(conn, queries, migrations, NOW_US)
        rows = conn.execute("SELECT id, quarantined FROM bots ORDER BY id").fetchall()
        assert rows == [("bot_0", 1), ("bot_1", 0), ("bot_2", 0)]
    finally:
        conn.close()


def test_upgrade_keeps_the_attempt_history(tmp_path: Path) -> None:
    """Version 3 builds the attempts table again (a new outcome): every row stays."""
    queries = load_queries("sqlite_queries.sql")
    migrations = load_migrations("sqlite_migrations")
    conn = sqlite3.connect(tmp_path / "db", isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        apply_sqlite_migrations(conn, queries, migrations[:2], NOW_US)
        conn.execute(
            "INSERT INTO bots (id, bot_key, instance_id, name, version, capabilities,"
            " operations, max_concurrency, registered_at, token_hash, token_expires_at,"
            " lease_until, resources, constraints, meta, metrics)"
            " VALUES ('bot_1', 'key', 'i', 'n', '1.0.0', '[]', '[]', 1, 0, 'h', 0, 0,"
            " '{}', '{}', '{}', '{}')"
        )
        conn.execute(
            "INSERT INTO jobs (id, op, payload, state, attempt, max_attempts, created_at,"
            " run_at, bot_id) VALUES ('job_1', 'sum', '{}', 'running', 2, 3, 0, 0, 'bot_1')"
        )
        history = [
            ("job_1", 1, "bot_1", 10, 20, 15, "expired"),
            ("job_1", 2, "bot_1", 30, 40, None, None),
        ]
        conn.executemany("INSERT INTO attempts VALUES (?, ?, ?, ?, ?, ?, ?)", history)
        apply_sqlite_migrations(conn, queries, migrations, NOW_US)
        columns = "job_id, attempt, bot_id, claimed_at, lease_until, ended_at, outcome"
        kept = conn.execute(f"SELECT {columns} FROM attempts ORDER BY attempt").fetchall()
        assert kept == history
        conn.execute("UPDATE attempts SET outcome = 'lost' WHERE attempt = 2")
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("UPDATE attempts SET outcome = 'gone' WHERE attempt = 2")
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("SELECT seen_at FROM jobs").fetchall() == [(None,)]
    finally:
        conn.close()


def test_upgrade_lets_a_bot_follow_its_own_concurrency(tmp_path: Path) -> None:
    """Version 6: a bot registered before it keeps its concurrency as its own ask, and
    no operator's choice is invented for it."""
    queries = load_queries("sqlite_queries.sql")
    migrations = load_migrations("sqlite_migrations")
    conn = sqlite3.connect(tmp_path / "db", isolation_level=None)
    try:
        before = [migration for migration in migrations if migration.version < 6]
        apply_sqlite_migrations(conn, queries, before, NOW_US)
        conn.execute(
            "INSERT INTO bots (id, bot_key, instance_id, name, version, capabilities,"
            " operations, max_concurrency, registered_at, token_hash, token_expires_at,"
            " lease_until, resources, constraints, meta, metrics)"
            " VALUES ('bot_1', 'key', 'i', 'n', '1.0.0', '[]', '[]', 4, 0, 'h', 0, 0,"
            " '{}', '{}', '{}', '{}')"
        )
        apply_sqlite_migrations(conn, queries, migrations, NOW_US)
        row = conn.execute(
            "SELECT bot_max_concurrency, operator_operations, operator_max_concurrency FROM bots"
        ).fetchone()
        assert row == (4, None, None)
    finally:
        conn.close()


def test_upgrade_to_revocation_keeps_attempts_and_their_claim_ids(tmp_path: Path) -> None:
    """Version 8 builds the attempts table again (the outcome `revoked`): every row stays,
    with its claim id and the index on it; no bot is revoked."""
    queries = load_queries("sqlite_queries.sql")
    migrations = load_migrations("sqlite_migrations")
    conn = sqlite3.connect(tmp_path / "db", isolation_level=None)
    try:
        before = [migration for migration in migrations if migration.version < 8]
        apply_sqlite_migrations(conn, queries, before, NOW_US)
        conn.execute(
            "INSERT INTO bots (id, bot_key, instance_id, name, version, capabilities,"
            " operations, max_concurrency, registered_at, token_hash, token_expires_at,"
            " lease_until, resources, constraints, meta, metrics)"
            " VALUES ('bot_1', 'key', 'i', 'n', '1.0.0', '[]', '[]', 4, 0, 'h', 0, 0,"
            " '{}', '{}', '{}', '{}')"
        )
        conn.execute(
            "INSERT INTO jobs (id, op, payload, state, attempt, max_attempts, created_at,"
            " run_at, bot_id) VALUES ('job_1', 'sum', '{}', 'running', 2, 3, 0, 0, 'bot_1')"
        )
        history = [
            ("job_1", 1, "bot_1", 10, 20, 15, "lost", "claim-a"),
            ("job_1", 2, "bot_1", 30, 40, None, None, None),
        ]
        conn.executemany("INSERT INTO attempts VALUES (?, ?, ?, ?, ?, ?, ?, ?)", history)
        apply_sqlite_migrations(conn, queries, migrations, NOW_US)
        columns = "job_id, attempt, bot_id, claimed_at, lease_until, ended_at, outcome, claim_id"
        kept = conn.execute(f"SELECT {columns} FROM attempts ORDER BY attempt").fetchall()
        assert kept == history
        indexes = conn.execute("SELECT name FROM pragma_index_list('attempts')").fetchall()
        assert ("attempts_claim_id",) in indexes
        conn.execute("UPDATE attempts SET outcome = 'revoked' WHERE attempt = 2")
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("UPDATE attempts SET outcome = 'gone' WHERE attempt = 2")
        assert conn.execute("SELECT revoked_at FROM bots").fetchall() == [(None,)]
    finally:
        conn.close()
