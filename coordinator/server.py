"""`botfleet server` (and `python -m coordinator`): flags, then serve until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import signal
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import cast

from aiohttp import web

from botfleet import eventloop
from botfleet.cli.argtypes import duration, duration_or_never
from botfleet.clock import Clock, SystemClock
from botfleet.logs import configure_logging
from botfleet.protocol.messages import ALL_FEATURES
from coordinator.app import create_app
from coordinator.auth import ServerTokens
from coordinator.config import ServerConfig
from coordinator.context import CONTEXT
from coordinator.dashboard.link import announce_dashboard, browsable_base, kept_admin_token
from coordinator.retry import exponential_backoff
from coordinator.store import open_store
from coordinator.tls import CertificateReloader, TlsError, is_loopback, server_context

log = logging.getLogger("coordinator")

ENV_ADMIN_TOKEN = "BOTFLEET_ADMIN_TOKEN"
ENV_ENROLL_TOKEN = "BOT_ENROLL_TOKEN"
ENV_STATE_DIR = "BOTFLEET_STATE_DIR"
DEFAULT_STATE_DIR = ".state"
DEFAULT_HEARTBEAT_INTERVAL_S = 30.0
SHUTDOWN_TIMEOUT_S = 10.0
LISTEN_BACKLOG = 1024
# A retention flag left out, told apart from `never` (None).
_NOT_GIVEN = object()


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (8000; 0: any)")
    parser.add_argument(
        "--db",
        metavar="URL",
        help="sqlite:///path/to/file.db (default: sqlite in the state folder) or "
        "postgresql://user@host/db (several servers may share one PostgreSQL)",
    )
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help=f"where generated tokens and the default database live "
        f"(env {ENV_STATE_DIR}, default {DEFAULT_STATE_DIR})",
    )
    parser.add_argument(
        "--admin-token",
        metavar="T",
        help=f"token of the producer/operator API (env {ENV_ADMIN_TOKEN}; "
        "default: generated on first start and kept in the state folder)",
    )
    parser.add_argument(
        "--enroll-token",
        metavar="T",
        help=f"token bots register with (env {ENV_ENROLL_TOKEN}; default: generated, kept)",
    )
    parser.add_argument(
        "--open-registration",
        action="store_true",
        help="let bots register with no enrollment token (trusted networks only)",
    )
    tls = parser.add_argument_group("TLS (HTTPS); SIGHUP reloads the certificate and key")
    tls.add_argument(
        "--tls-cert", metavar="FILE", help="serve HTTPS only, with this PEM certificate (chain)"
    )
    tls.add_argument("--tls-key", metavar="FILE", help="the certificate's PEM private key")
    tls.add_argument(
        "--tls-client-ca",
        metavar="FILE",
        help="mutual TLS: every caller must present a client certificate signed by this CA",
    )
    timing = parser.add_argument_group("timing (seconds; mostly for tests)")
    timing.add_argument(
        "--heartbeat-interval",
        type=float,
        metavar="S",
        help="told to bots (30, or a quarter of --bot-lease-ttl if shorter)",
    )
    timing.add_argument("--bot-lease-ttl", type=float, metavar="S", help="(120)")
    timing.add_argument("--job-lease-ttl", type=float, metavar="S", help="(180)")
    timing.add_argument("--reaper-interval", type=float, metavar="S", help="(1)")
    timing.add_argument(
        "--reaper-grace",
        type=float,
        metavar="S",
        help="after a start, before leases are first expired (default: --bot-lease-ttl)",
    )
    retain = parser.add_argument_group("retention (durations: 30s, 5m, 2h, 7d)")
    retain.add_argument(
        "--retain-finished",
        type=duration_or_never,
        default=_NOT_GIVEN,
        metavar="DURATION",
        help="delete finished jobs, with their attempts, this long after they end (7d; never)",
    )
    retain.add_argument(
        "--retain-bots",
        type=duration_or_never,
        default=_NOT_GIVEN,
        metavar="DURATION",
        help="forget bots offline for this long; their jobs keep their ids (7d; never)",
    )
    parser.add_argument(
        "--default-job-timeout",
        type=duration,
        metavar="DURATION",
        help="the time limit of jobs submitted without timeout_s (30s, 5m, 1h, 7d; default: none)",
    )
    parser.add_argument(
        "--claim-batch-size",
        type=int,
        metavar="N",
        help="how many jobs bots ask for per claim, told to them at registration (5)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        metavar="N",
        help="the largest request body taken, in bytes; told to bots, which fail a job whose "
        "result cannot fit (8388608: 8 MiB)",
    )
    parser.add_argument(
        "--max-log-bytes",
        type=int,
        metavar="N",
        help="the job log kept per job, in bytes (text and a newline a line); past it, one line "
        "says how much was dropped (1048576: 1 MiB)",
    )
    parser.add_argument(
        "--features",
        metavar="LIST",
        help=(
            "the protocol extensions offered to bots, comma-separated (all: "
            + ",".join(ALL_FEATURES)
            + "); a bot uses only those offered"
        ),
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="readable lines (text) or JSON lines (json)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="(info)",
    )


def config_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> ServerConfig:
    """Flags first, then the environment, then defaults; ValueError names what is wrong."""
    defaults = ServerConfig()
    bot_lease_ttl_s = _pick(args.bot_lease_ttl, defaults.bot_lease_ttl_s)
    heartbeat_default = min(DEFAULT_HEARTBEAT_INTERVAL_S, bot_lease_ttl_s / 4)
    try:
        return ServerConfig(
            host=args.host,
            port=args.port,
            db_url=args.db or None,
            state_dir=Path(args.state_dir or environ.get(ENV_STATE_DIR) or DEFAULT_STATE_DIR),
            admin_token=args.admin_token or environ.get(ENV_ADMIN_TOKEN) or None,
            enroll_token=args.enroll_token or environ.get(ENV_ENROLL_TOKEN) or None,
            open_registration=bool(args.open_registration),
            tls_cert=_path(args.tls_cert),
            tls_key=_path(args.tls_key),
            tls_client_ca=_path(args.tls_client_ca),
            heartbeat_interval_s=_pick(args.heartbeat_interval, heartbeat_default),
            bot_lease_ttl_s=bot_lease_ttl_s,
            job_lease_ttl_s=_pick(args.job_lease_ttl, defaults.job_lease_ttl_s),
            reaper_interval_s=_pick(args.reaper_interval, defaults.reaper_interval_s),
            reaper_startup_grace_s=args.reaper_grace,
            default_job_timeout_s=args.default_job_timeout,
            retain_finished_s=_retain(args.retain_finished, defaults.retain_finished_s),
            retain_bots_s=_retain(args.retain_bots, defaults.retain_bots_s),
            claim_batch_size=(
                defaults.claim_batch_size
                if args.claim_batch_size is None
                else args.claim_batch_size
            ),
            max_body_bytes=(
                defaults.max_body_bytes if args.max_body_bytes is None else args.max_body_bytes
            ),
            max_log_bytes=(
                defaults.max_log_bytes if args.max_log_bytes is None else args.max_log_bytes
            ),
            features=(
                defaults.features
                if args.features is None
                else tuple(f.strip() for f in args.features.split(",") if f.strip())
            ),
        )
    except ValueError as exc:
        raise ValueError(_flag_names(str(exc))) from None


def run_server(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    """Serve until SIGINT or SIGTERM (a second one stops at once); the exit status."""
    env = os.environ if env is None else env
    try:
        config = config_from_args(args, env)
        loop_name, loop_factory = eventloop.loop_factory(env)
    except ValueError as exc:
        print(f"botfleet server: {exc}", file=sys.stderr)
        return 2
    configure_logging(args.log_format, getattr(logging, str(args.log_level).upper()))
    log.debug("event loop: %s", loop_name)
    eventloop.freeze_startup_heap()
    return eventloop.run(serve(config, SystemClock()), loop_factory)


async def serve(config: ServerConfig, clock: Clock) -> int:
    tls = config.tls
    try:
        ssl_context = None if tls is None else server_context(tls)
    except TlsError as exc:
        print(f"botfleet server: {exc}", file=sys.stderr)
        return 2
    if tls is None and not is_loopback(config.host):
        log.warning(
            "listening on %s without TLS: tokens and payloads cross the network in clear "
            "text (serve HTTPS with --tls-cert/--tls-key, or behind a proxy that does)",
            config.host or "every address",
        )
    try:
        store = open_store(
            config.database_url, clock, exponential_backoff(config.retry_base_s, config.retry_cap_s)
        )
        app = create_app(config, store, clock)
    except (ValueError, OSError) as exc:
        print(f"botfleet server: {exc}", file=sys.stderr)
        return 2
    _announce_tokens(app[CONTEXT].tokens)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    try:
        await runner.setup()
    except Exception as exc:  # the store cannot open: say so, exit non-zero
        log.exception("cannot start: %s", exc)
        print(
            f"botfleet server: cannot open the store {config.database_url}: {exc}", file=sys.stderr
        )
        return 1
    try:
        site = web.TCPSite(
            runner, config.host, config.port, backlog=LISTEN_BACKLOG, ssl_context=ssl_context
        )
        try:
            await site.start()
        except OSError as exc:
            print(
                f"botfleet server: cannot listen on {config.host}:{config.port}: {exc}",
                file=sys.stderr,
            )
            return 1
        port = _bound_port(runner, config.port)
        scheme = "http" if ssl_context is None else "https"
        print(f"botfleet coordinator listening on {scheme}://{config.host}:{port}", flush=True)
        admin_token = kept_admin_token(config.admin_token, app[CONTEXT].tokens.admin_file)
        announce_dashboard(browsable_base(scheme, config.host, port), admin_token, sys.stdout)
        reloader = (
            None if tls is None or ssl_context is None else (CertificateReloader(ssl_context, tls))
        )
        with _stop_on_signals() as stop, _reload_on_sighup(reloader):
            await stop.wait()
        log.info("stopping: finishing requests in flight (up to %ss)", SHUTDOWN_TIMEOUT_S)
    finally:
        await runner.cleanup()
    log.info("stopped")
    return 0


def _announce_tokens(tokens: ServerTokens) -> None:
    for what, path in (("admin", tokens.admin_file), ("enrollment", tokens.enroll_file)):
        if path is not None:
            print(f"botfleet coordinator: {what} token in {path.resolve()}", flush=True)


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[asyncio.Event]:
    """SIGINT/SIGTERM set the event; a second one exits at once. Old handlers come back."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            log.warning("second %s: stopping now", signal.Signals(signum).name)
            os._exit(128 + signum)
        log.info("%s: stopping gracefully", signal.Signals(signum).name)
        stop.set()

    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        yield stop
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


@contextlib.contextmanager
def _reload_on_sighup(reloader: CertificateReloader | None) -> Iterator[None]:
    """SIGHUP reloads the certificate and key (with TLS; else it is left as it was)."""
    if reloader is None:
        yield
        return
    loop = asyncio.get_running_loop()

    def on_sighup() -> None:
        log.info("SIGHUP: reloading the certificate and key")
        reloader.reload()

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)


def _path(value: str | None) -> Path | None:
    return Path(value).expanduser() if value else None


def _bound_port(runner: web.AppRunner, requested: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return requested


def _pick(value: float | None, default: float) -> float:
    return default if value is None else value


def _retain(value: object, default: float | None) -> float | None:
    """A retention flag: not given (the default), `never` (None), or seconds."""
    if value is _NOT_GIVEN:
        return default
    return None if value is None else float(cast(float, value))


def _flag_names(message: str) -> str:
    """Config field names in an error, as the flags a user typed."""
    names = {
        "heartbeat_interval_s": "--heartbeat-interval",
        "bot_lease_ttl_s": "--bot-lease-ttl",
        "job_lease_ttl_s": "--job-lease-ttl",
        "reaper_interval_s": "--reaper-interval",
        "reaper_startup_grace_s": "--reaper-grace",
        "retain_finished_s": "--retain-finished",
        "retain_bots_s": "--retain-bots",
        "claim_batch_size": "--claim-batch-size",
        "default_job_timeout_s": "--default-job-timeout",
        "max_body_bytes": "--max-body-bytes",
        "max_log_bytes": "--max-log-bytes",
        "unknown features": "--features: unknown features",
        "port": "--port",
        "admin_token": "--admin-token",
        "enroll_token": "--enroll-token",
        "tls_cert": "--tls-cert",
        "tls_key": "--tls-key",
        "tls_client_ca": "--tls-client-ca",
    }
    for field, flag in names.items():
        message = re.sub(rf"\b{field}\b", flag, message)  # whole words: not "teleport"
    return message
