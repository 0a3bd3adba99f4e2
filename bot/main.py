"""The command line of the bot: `botfleet bot …`, `python -m bot …`, `python bin/bot.py …`.

`add_bot_arguments` and `run_bot` are what `botfleet/cli/main.py` calls; flags
override the environment variables of docs/bot.md. Exit codes:
0 clean shutdown, 1 stopped hard (second signal), 2 bad settings, 3 safe halt, 4 drained
for a restart (too many abandoned handler threads), 130 interrupted while starting.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence

from bot.agent.signals import stop_on_signals
from bot.errors import SettingsError
from bot.logging_setup import LOG_FORMATS, configure_logging
from bot.machine import EXIT_BAD_SETTINGS, Bot
from bot.settings import Settings, load_settings
from botfleet import eventloop

log = logging.getLogger(__name__)

EXIT_INTERRUPTED = 130


def add_bot_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        action="extend",
        nargs="+",
        metavar="URL",
        help="coordinator base URL(s), e.g. http://localhost:8000/v1; several (or a "
        "comma-separated list) are fail-over targets [SERVER_BASE]",
    )
    parser.add_argument("--name", help="bot name, part of its identity [BOT_NAME]")
    parser.add_argument("--state-dir", metavar="DIR", help="identity and outbox [BOT_STATE_DIR]")
    parser.add_argument(
        "--plugins", metavar="MOD,…", help="extra plugin modules, comma-separated [BOT_PLUGINS]"
    )
    parser.add_argument("--max-concurrency", metavar="N", help="jobs run at once [MAX_CONCURRENCY]")
    parser.add_argument(
        "--metrics-port", metavar="P", help="serve Prometheus metrics here [BOT_METRICS_PORT]"
    )
    parser.add_argument(
        "--drain-grace",
        metavar="S",
        help="seconds running jobs get to finish once a drain begins; then they are cancelled "
        "and handed back [BOT_DRAIN_GRACE_SEC, 60]",
    )
    parser.add_argument(
        "--crash-loop-limit",
        metavar="K",
        help="quarantine the bot when a handler fails K times in a row; 0: never "
        "[BOT_CRASH_LOOP_LIMIT, 10]",
    )
    parser.add_argument(
        "--ca-file",
        metavar="FILE",
        help="a CA bundle to trust besides the system's, for an https:// server [BOT_CA_FILE]",
    )
    parser.add_argument(
        "--client-cert",
        metavar="FILE",
        help="a PEM client certificate (and its key, unless --client-key) for a coordinator "
        "that requires one (mutual TLS) [BOT_CLIENT_CERT]",
    )
    parser.add_argument(
        "--client-key", metavar="FILE", help="the client certificate's key [BOT_CLIENT_KEY]"
    )
    parser.add_argument(
        "--label",
        action="append",
        metavar="KEY=VALUE",
        help="a label of this bot, e.g. gpu=a100; repeat for more (replaces BOT_LABELS) "
        "[BOT_LABELS]",
    )
    parser.add_argument("--log-format", choices=LOG_FORMATS, default="text")
    parser.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), default="info"
    )


def flags_from(args: argparse.Namespace) -> dict[str, str | None]:
    """The flags given, keyed by the environment variable each overrides."""
    servers: Sequence[str] | None = getattr(args, "server", None)
    labels: Sequence[str] | None = getattr(args, "label", None)
    return {
        "SERVER_BASE": ",".join(servers) if servers else None,
        "BOT_NAME": getattr(args, "name", None),
        "BOT_STATE_DIR": getattr(args, "state_dir", None),
        "BOT_PLUGINS": getattr(args, "plugins", None),
        "MAX_CONCURRENCY": getattr(args, "max_concurrency", None),
        "BOT_METRICS_PORT": getattr(args, "metrics_port", None),
        "BOT_DRAIN_GRACE_SEC": getattr(args, "drain_grace", None),
        "BOT_CRASH_LOOP_LIMIT": getattr(args, "crash_loop_limit", None),
        "BOT_CA_FILE": getattr(args, "ca_file", None),
        "BOT_CLIENT_CERT": getattr(args, "client_cert", None),
        "BOT_CLIENT_KEY": getattr(args, "client_key", None),
        "BOT_LABELS": ",".join(labels) if labels else None,
    }


def run_bot(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    """Run a bot until it stops; its exit code."""
    level = getattr(logging, str(getattr(args, "log_level", "info")).upper())
    handler = configure_logging(getattr(args, "log_format", "text"), level)
    try:
        env = os.environ if env is None else env
        try:
            settings = load_settings(env, flags_from(args))
            loop_name, loop_factory = eventloop.loop_factory(env)
        except (SettingsError, eventloop.EventLoopError) as exc:
            log.error("bad setting: %s", exc)
            return EXIT_BAD_SETTINGS
        log.debug("event loop: %s", loop_name)
        eventloop.freeze_startup_heap()
        try:
            return eventloop.run(serve(settings), loop_factory)
        except KeyboardInterrupt:  # Ctrl-C before the signal handlers were in place
            log.warning("interrupted while starting")
            return EXIT_INTERRUPTED
    finally:
        logging.getLogger().removeHandler(handler)


async def serve(settings: Settings) -> int:
    bot = Bot(settings)
    with stop_on_signals(bot.request_stop):
        return await bot.run()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="botfleet bot", description="Run a botfleet bot (worker agent)."
    )
    add_bot_arguments(parser)
    return run_bot(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover - `python -m bot.main`
    sys.exit(main())
