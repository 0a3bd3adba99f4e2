"""The coordinator's settings: one frozen value, built once by the command line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from botfleet.protocol.messages import ALL_FEATURES
from coordinator.store.retention import DEFAULT_BATCH_SIZE, DEFAULT_RETAIN_S, Retention
from coordinator.tls import TlsFiles

MIB = 1024 * 1024
MAX_JOB_TIMEOUT_S = 604_800  # a week: the most a job's own timeout_s may be
# The smallest body limit: a `fail` report with the longest error text must always fit.
MIN_BODY_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    db_url: str | None = None  # None: SQLite in the state folder
    state_dir: Path = Path(".state")
    admin_token: str | None = None  # None: generated on first start, kept in state_dir
    enroll_token: str | None = None
    open_registration: bool = False
    # HTTPS: a certificate and its key; with a client CA, callers must present a certificate.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    # What bots are told (seconds), and the leases the coordinator grants.
    heartbeat_interval_s: float = 30.0
    bot_lease_ttl_s: float = 120.0
    job_lease_ttl_s: float = 180.0
    claim_batch_size: int = 5
    # The time limit of a job submitted without timeout_s, told to the bot that claims it.
    default_job_timeout_s: float | None = None
    default_max_concurrency: int = 2
    features: tuple[str, ...] = ALL_FEATURES
    tracing: bool | None = None  # OpenTelemetry spans: None = when installed
    # Limits and housekeeping.
    max_body_bytes: int = 8 * MIB
    max_log_bytes: int = MIB  # log text kept per job; past it, lines are counted, not kept
    token_ttl_s: int = 86_400
    reaper_interval_s: float = 1.0
    # Before the first expiry after a start; None = one bot lease (see reaper.py).
    reaper_startup_grace_s: float | None = None
    # Finished jobs and offline bots are deleted this long after; None keeps them.
    retain_finished_s: float | None = DEFAULT_RETAIN_S
    retain_bots_s: float | None = DEFAULT_RETAIN_S
    retention_batch_size: int = DEFAULT_BATCH_SIZE  # rows per sweep transaction
    # A waiting claim or GET looks again about this often (jittered), in case a notice was
    # missed. Notices come from this process (SQLite) or LISTEN/NOTIFY, which is re-armed
    # with a wake-all after a reconnect (PostgreSQL), so this is only a safety net.
    long_poll_recheck_s: float = 5.0
    token_cache_ttl_s: float = 5.0
    # More failed authentications than this from one address within the window: that
    # address is answered 429 until the window clears (counted per process).
    auth_failure_limit: int = 20
    auth_failure_window_s: float = 60.0
    token_cache_size: int = 10_000
    store_retry_after_s: int = 1  # Retry-After of a 503 when the store fails
    stats_window_s: int = 60
    retry_base_s: float = 1.0  # backoff of a failed, retryable job
    retry_cap_s: float = 300.0

    def __post_init__(self) -> None:
        positive = (
            "heartbeat_interval_s",
            "bot_lease_ttl_s",
            "job_lease_ttl_s",
            "reaper_interval_s",
            "long_poll_recheck_s",
            "retry_base_s",
            "retry_cap_s",
            "auth_failure_window_s",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        at_least_one = (
            "claim_batch_size",
            "token_ttl_s",
            "stats_window_s",
            "retention_batch_size",
            "auth_failure_limit",
            "max_log_bytes",
        )
        for name in at_least_one:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        if self.max_body_bytes < MIN_BODY_BYTES:
            raise ValueError(
                f"max_body_bytes must be at least {MIN_BODY_BYTES}, got {self.max_body_bytes!r} "
                "(a failure report must always fit)"
            )
        if not 0 <= self.port <= 65_535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        if self.default_max_concurrency < 0:
            raise ValueError("default_max_concurrency must not be negative")
        timeout = self.default_job_timeout_s
        if timeout is not None and not 0 < timeout <= MAX_JOB_TIMEOUT_S:
            raise ValueError(
                f"default_job_timeout_s must be more than 0 and at most a week "
                f"({MAX_JOB_TIMEOUT_S} s), got {timeout:g} s"
            )
        if self.reaper_startup_grace_s is not None and self.reaper_startup_grace_s < 0:
            raise ValueError("reaper_startup_grace_s must not be negative")
        for retain in ("retain_finished_s", "retain_bots_s"):
            value = getattr(self, retain)
            if value is not None and not value > 0:
                raise ValueError(f"{retain} must be positive, got {value!r}")
        if self.token_cache_ttl_s < 0 or self.token_cache_size < 0:
            raise ValueError("token cache settings must not be negative")
        if self.heartbeat_interval_s >= self.bot_lease_ttl_s:
            raise ValueError(
                f"heartbeat_interval_s ({self.heartbeat_interval_s}) must be shorter than "
                f"bot_lease_ttl_s ({self.bot_lease_ttl_s}), or every bot goes offline"
            )
        unknown = set(self.features) - set(ALL_FEATURES)
        if unknown:
            raise ValueError(f"unknown features: {sorted(unknown)}")
        for token_field in ("admin_token", "enroll_token"):
            token = getattr(self, token_field)
            if token is not None and not token.strip():
                raise ValueError(f"{token_field} must not be empty")

        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: give both or neither")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("tls_client_ca needs tls_cert and tls_key (mutual TLS is TLS)")

    @property
    def tls(self) -> TlsFiles | None:
        """The files to serve HTTPS with; None: plain HTTP."""
        if self.tls_cert is None or self.tls_key is None:
            return None
        return TlsFiles(self.tls_cert, self.tls_key, self.tls_client_ca)

    @property
    def reaper_grace_s(self) -> float:
        grace = self.reaper_startup_grace_s
        return self.bot_lease_ttl_s if grace is None else grace

    @property
    def retention(self) -> Retention:
        return Retention(self.retain_finished_s, self.retain_bots_s, self.retention_batch_size)

    @property
    def database_url(self) -> str:
        """`--db`, or a SQLite file in the state folder."""
        if self.db_url:
            return self.db_url
        return f"sqlite:///{self.state_dir / 'botfleet.db'}"
