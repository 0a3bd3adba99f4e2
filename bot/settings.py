"""The bot's settings: read from the environment (and flags) when the bot starts, never at import.

Flags override the environment; while the bot runs, values the coordinator sends
in `config`/`assignment` override both (see `bot.link.session.Session`), so `Settings`
stays the frozen start-up view.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bot.errors import SettingsError
from bot.work.prefetch import AUTO, Prefetch
from botfleet.protocol.labels import parse_labels
from botfleet.tls import TlsField, TlsFileError, client_context

DEFAULT_SERVER = "http://localhost:8000/v1"
MAX_PREFETCH = 1000  # the protocol's bound on a claim's limit (free slots come on top: clamped)

# The flag that sets each variable, so an error names what the user typed.
FLAG_FOR: Mapping[str, str] = {
    "SERVER_BASE": "--server",
    "BOT_NAME": "--name",
    "BOT_STATE_DIR": "--state-dir",
    "BOT_PLUGINS": "--plugins",
    "MAX_CONCURRENCY": "--max-concurrency",
    "BOT_METRICS_PORT": "--metrics-port",
    "BOT_DRAIN_GRACE_SEC": "--drain-grace",
    "BOT_CRASH_LOOP_LIMIT": "--crash-loop-limit",
    "BOT_CA_FILE": "--ca-file",
    "BOT_CLIENT_CERT": "--client-cert",
    "BOT_CLIENT_KEY": "--client-key",
    "BOT_LABELS": "--label",
}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,99}$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")


@dataclass(frozen=True, slots=True)
class Settings:
    server_bases: tuple[str, ...] = (DEFAULT_SERVER,)
    heartbeat_interval_s: float = 30.0
    bot_lease_ttl_s: float = 120.0
    job_lease_ttl_s: float = 180.0
    claim_batch_size: int = 5
    max_concurrency: int = 2
    min_backoff_ms: int = 500
    max_backoff_ms: int = 60_000
    bot_version: str = "1.0.0"
    bot_name: str = "default"
    state_dir: Path = Path(".state")
    enroll_token: str | None = None
    # TLS: a CA bundle trusted besides the system's; a client certificate (mutual TLS).
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None  # None: the key is in client_cert's file
    plugins: tuple[str, ...] = ()
    metrics_port: int | None = None
    # How long a drain lets running jobs finish before cancelling them (fail, retryable).
    drain_grace_s: float = 60.0
    # A handler failing this many times in a row quarantines the bot (0: never).
    crash_loop_limit: int = 10
    # Failures in a row to reach the coordinator that open the circuit (DEGRADED_NET).
    circuit_threshold: int = 3
    # ... and for at least this long: a lossy but working network (a few calls in a row
    # lost among hundreds a second) does not stop the bot's work.
    circuit_window_s: float = 1.0
    # While the circuit is open, the probe (heartbeat) retries at most this far apart, so
    # the bot is back within about this long after the coordinator is.
    probe_max_backoff_ms: int = 2_000
    # A claim expected to answer at once (work was waiting, or reports ride on it) that
    # has not answered in twice its usual round trip, at most this, is sent again under
    # the same claim_id, and the first answer wins (0: never).
    claim_hedge_ms: int = 300
    # Failed claims retried at once, as a share of the claims answered; beyond it the
    # bot backs off (a coordinator that sheds load gets fewer calls, not more).
    retry_budget_ratio: float = 0.5
    # Environment variables whose values are masked in job log lines.
    redact: tuple[str, ...] = ()
    # Job log lines waiting to be sent at most; past it, lines are dropped and counted.
    log_buffer_lines: int = 10_000
    # What this bot has (gpu=a100, region=eu): jobs that require labels go to bots that have them.
    labels: Mapping[str, str] = field(default_factory=dict)
    # Jobs claimed beyond the free slots (with a coordinator that offers `prefetch`):
    # auto (sized from the operations' recent durations, none for long or unknown ones),
    # 0 (never) or a fixed number.
    prefetch: Prefetch = AUTO
    # A prefetched job not started within this long goes back to the queue.
    prefetch_hold_ms: int = 500
    # Tuning with no environment variable (tests pass small values).
    request_timeout_s: float = 10.0
    long_poll_ms: int = 20_000
    idle_poll_max_ms: int = 5_000
    progress_interval_s: float = 1.0
    watchdog_tick_s: float = 0.5  # how often deadlines are checked
    report_limit_s: float = 60.0  # a report delivery running longer is given up (outbox)
    loop_lag_tick_s: float = 1.0  # how often the event loop's lag is measured
    loop_lag_limit_s: float = 2.0  # a lag above this is a stall: logged, heartbeat at once
    token_renew_at: float = 0.8  # renew the bot token at this share of its lifetime
    cancel_wait_s: float = 5.0  # how long cancelled jobs get to end before they are abandoned


# ---------------------------------------------------------------- parsers (text -> value)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"must be a number of seconds, got {text!r}") from None
    if not 0 <= value < 1e9:
        raise ValueError(f"must be 0 or more seconds, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"must be a number of seconds, got {text!r}") from None
    if not 0 < value < 1e9:
        raise ValueError(f"must be a positive number of seconds, got {text!r}")
    return value


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"must be a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return value

    return parse


def _prefetch(text: str) -> Prefetch:
    if text.lower() == AUTO:
        return AUTO
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"must be auto, 0 or a number of jobs, got {text!r}") from None
    if not 0 <= value <= MAX_PREFETCH:
        raise ValueError(f"must be auto, or between 0 and {MAX_PREFETCH} jobs, got {value}")
    return value


def _servers(text: str) -> tuple[str, ...]:
    bases = tuple(part.strip().rstrip("/") for part in text.split(",") if part.strip())
    if not bases:
        raise ValueError("must name at least one server URL")
    for base in bases:
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{base!r} is not an http(s) URL such as {DEFAULT_SERVER}")
    return bases


def _version(text: str) -> str:
    if not _VERSION.match(text):
        raise ValueError(f"must look like X.Y.Z, got {text!r}")
    return text


def _name(text: str) -> str:
    if not _NAME.match(text):
        raise ValueError(
            f"must be 1-100 letters, digits or _ . @ : - (starting with a letter or digit), "
            f"got {text!r}"
        )
    return text


def _modules(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    for name in names:
        if not _MODULE.match(name):
            raise ValueError(f"{name!r} is not a Python module name")
    return names


def _readable_file(text: str) -> Path:
    path = Path(text).expanduser()
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    return path


def _text(text: str) -> str:
    return text


def _labels(text: str) -> dict[str, str]:
    """`gpu=a100,region=eu`: comma-separated key=value pairs."""
    return parse_labels(part for part in text.split(",") if part.strip())


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


# variable -> (field, parser). An empty value counts as unset.
_VARIABLES: Mapping[str, tuple[str, Callable[[str], Any]]] = {
    "SERVER_BASE": ("server_bases", _servers),
    "HEARTBEAT_INTERVAL_SEC": ("heartbeat_interval_s", _positive_float),
    "BOT_LEASE_TTL_SEC": ("bot_lease_ttl_s", _positive_float),
    "JOB_LEASE_TTL_SEC": ("job_lease_ttl_s", _positive_float),
    "CLAIM_BATCH_SIZE": ("claim_batch_size", _int_between(1, 100)),
    "MAX_CONCURRENCY": ("max_concurrency", _int_between(1, 10_000)),
    "MIN_BACKOFF_MS": ("min_backoff_ms", _int_between(1, 3_600_000)),
    "MAX_BACKOFF_MS": ("max_backoff_ms", _int_between(1, 3_600_000)),
    "BOT_VERSION": ("bot_version", _version),
    "BOT_NAME": ("bot_name", _name),
    "BOT_STATE_DIR": ("state_dir", lambda text: Path(text).expanduser()),
    "BOT_ENROLL_TOKEN": ("enroll_token", _text),
    "BOT_PLUGINS": ("plugins", _modules),
    "BOT_METRICS_PORT": ("metrics_port", _int_between(0, 65_535)),
    "BOT_DRAIN_GRACE_SEC": ("drain_grace_s", _seconds),
    "BOT_CRASH_LOOP_LIMIT": ("crash_loop_limit", _int_between(0, 1_000_000)),
    "BOT_CIRCUIT_THRESHOLD": ("circuit_threshold", _int_between(1, 1_000)),
    "BOT_CA_FILE": ("ca_file", _readable_file),
    "BOT_CLIENT_CERT": ("client_cert", _readable_file),
    "BOT_CLIENT_KEY": ("client_key", _readable_file),
    "BOT_REDACT": ("redact", _names),
    "BOT_LOG_BUFFER_LINES": ("log_buffer_lines", _int_between(1, 10_000_000)),
    "BOT_LABELS": ("labels", _labels),
    "BOT_PREFETCH": ("prefetch", _prefetch),
    "BOT_PREFETCH_HOLD_MS": ("prefetch_hold_ms", _int_between(1, 3_600_000)),
}

VARIABLES: tuple[str, ...] = tuple(_VARIABLES)


def describe(variable: str, from_flag: bool) -> str:
    """`MAX_CONCURRENCY`, or `--max-concurrency (MAX_CONCURRENCY)` when a flag set it."""
    flag = FLAG_FOR.get(variable)
    return f"{flag} ({variable})" if from_flag and flag else variable


def load_settings(
    env: Mapping[str, str],
    flags: Mapping[str, str | None] | None = None,
    **tuning: Any,
) -> Settings:
    """Settings from the environment, with flags (keyed by variable name) taking precedence.

    `tuning` sets fields that have no variable (timeouts in tests). Raises
    `SettingsError` naming the variable (and flag) of the first bad value.
    """
    flags = flags or {}
    values: dict[str, Any] = dict(tuning)
    unknown = set(tuning) - {f.name for f in fields(Settings)}
    if unknown:
        raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
    for variable, (field_name, parse) in _VARIABLES.items():
        from_flag = flags.get(variable) not in (None, "")
        raw = flags[variable] if from_flag else env.get(variable)
        if raw is None or not raw.strip():
            continue
        try:
            values[field_name] = parse(raw.strip())
        except ValueError as exc:
            raise SettingsError(describe(variable, from_flag), str(exc)) from None
    settings = Settings(**values)
    _check_together(settings)
    tls_context(settings)  # a file that cannot be used stops the bot now, not at a call
    return settings


# Which variable names each file of `botfleet.tls.client_context`.
TLS_VARIABLES: Mapping[TlsField, str] = {
    "ca_file": "BOT_CA_FILE",
    "client_cert": "BOT_CLIENT_CERT",
    "client_key": "BOT_CLIENT_KEY",
}


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The bot's SSL context (None: aiohttp's default); `SettingsError` names the variable
    of a file that cannot be used (unreadable, not PEM, a key that does not match)."""
    try:
        return client_context(
            _text_or_none(settings.ca_file),
            _text_or_none(settings.client_cert),
            _text_or_none(settings.client_key),
        )
    except TlsFileError as exc:
        raise SettingsError(TLS_VARIABLES[exc.field], str(exc)) from None


def _text_or_none(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _check_together(settings: Settings) -> None:
    if settings.min_backoff_ms > settings.max_backoff_ms:
        raise SettingsError(
            "MIN_BACKOFF_MS",
            f"{settings.min_backoff_ms} is above MAX_BACKOFF_MS {settings.max_backoff_ms}",
        )
    if settings.heartbeat_interval_s >= settings.bot_lease_ttl_s:
        raise SettingsError(
            "HEARTBEAT_INTERVAL_SEC",
            f"{settings.heartbeat_interval_s:g} s must be shorter than BOT_LEASE_TTL_SEC "
            f"{settings.bot_lease_ttl_s:g} s, or the bot's lease runs out between heartbeats",
        )
