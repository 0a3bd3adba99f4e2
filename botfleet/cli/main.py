"""`botfleet`: one command line for the coordinator, the bot, the operator and the demo.

`server` and `bot` hand their arguments to the coordinator and the bot packages,
imported only when asked for, so the operator commands work on a machine that
has neither.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from rich.console import Console

from botfleet import __version__
from botfleet.cli.bots import add_bot_commands
from botfleet.cli.context import Context, Handler
from botfleet.cli.dashboard import add_dashboard_command, run_dashboard_command
from botfleet.cli.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, CliError, from_client
from botfleet.cli.joblogs import add_log_commands
from botfleet.cli.jobs import add_job_commands
from botfleet.cli.limits import add_limit_commands
from botfleet.cli.render import Output
from botfleet.cli.schedules import add_schedule_commands
from botfleet.cli.settings import add_client_arguments, connect, resolve_settings
from botfleet.cli.tokens import add_token_commands
from botfleet.client import BotfleetError
from botfleet.clock import SystemClock

PROG = "botfleet"
_PIPE_WIDTH = 500  # no wrapping or cropping when the output goes to a pipe or a file


def server_parser() -> argparse.ArgumentParser:
    """`botfleet server`'s flags (ImportError where the coordinator is not installed)."""
    from coordinator.server import add_server_arguments

    parser = argparse.ArgumentParser(
        prog=f"{PROG} server", description="Run the coordinator (HTTP API and dashboard)."
    )
    add_server_arguments(parser)
    return parser


def bot_parser() -> argparse.ArgumentParser:
    """`botfleet bot`'s flags (ImportError where the bot agent is not installed)."""
    from bot.main import add_bot_arguments

    parser = argparse.ArgumentParser(
        prog=f"{PROG} bot", description="Run a bot: claim jobs from the coordinator, run them."
    )
    add_bot_arguments(parser)
    return parser


def run_server_command(argv: Sequence[str]) -> int:
    try:
        from coordinator.server import run_server

        parser = server_parser()
    except ImportError as exc:
        raise CliError(f"the coordinator is not available here: {exc}") from None
    return run_server(parser.parse_args(argv))


def run_bot_command(argv: Sequence[str]) -> int:
    try:
        from bot.main import run_bot

        parser = bot_parser()
    except ImportError as exc:
        raise CliError(f"the bot agent is not available here: {exc}") from None
    return run_bot(parser.parse_args(argv))


def run_demo_command(args: argparse.Namespace) -> int:
    from botfleet.cli.demo import DemoSettings, run_demo

    settings = DemoSettings(
        bots=args.bots, jobs=args.jobs, keep_running=args.keep, state_dir=args.state_dir
    )
    return run_demo(settings, _consoles(os.environ))


# Subcommands whose arguments belong to another package: everything after the name is theirs.
DELEGATED: dict[str, tuple[Callable[[Sequence[str]], int], str]] = {
    "server": (run_server_command, "run the coordinator (see `botfleet server --help`)"),
    "bot": (run_bot_command, "run a bot (see `botfleet bot --help`)"),
}
# Their parsers, for what reads every command's flags (the documentation's reference).
DELEGATED_PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "server": server_parser,
    "bot": bot_parser,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="botfleet: bots claim jobs from a coordinator under leases.",
        epilog="Operator commands find the coordinator in --server/BOTFLEET_SERVER and a "
        "token in --token/BOTFLEET_TOKEN (or --admin-token/BOTFLEET_ADMIN_TOKEN), else the "
        "admin token in the server's state folder. "
        "Exit status: 0 ok, 1 error, 2 usage, 3 some waited-for jobs did not succeed.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, text) in DELEGATED.items():
        # Listed for --help only: main() hands these over before argparse sees them.
        subparsers.add_parser(name, help=text, add_help=False)

    common = argparse.ArgumentParser(add_help=False)
    add_client_arguments(common)
    common.add_argument("--json", action="store_true", help="print JSON for scripts")
    add_job_commands(subparsers, [common])
    add_log_commands(subparsers, [common])
    add_bot_commands(subparsers, [common])
    add_token_commands(subparsers, [common])
    add_limit_commands(subparsers, [common])
    connection = argparse.ArgumentParser(add_help=False)
    add_client_arguments(connection)
    add_dashboard_command(subparsers, [connection])
    add_schedule_commands(subparsers, [common])

    demo = subparsers.add_parser(
        "demo",
        help="run a coordinator and bots locally, submit jobs, show what happens",
    )
    demo.add_argument("--bots", type=_bounded(1, 50), default=3, help="default 3")
    demo.add_argument("--jobs", type=_bounded(1, 100_000), default=1000, help="default 1000")
    demo.add_argument(
        "--keep",
        action="store_true",
        help="keep the coordinator running after the summary (for the dashboard and the "
        "operator commands) until Ctrl-C",
    )
    demo.add_argument("--state-dir", help="folder for the demo's database and logs (default: new)")
    return parser


def _bounded(low: int, high: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, not {value}")
        return value

    return convert


def _consoles(environ: Mapping[str, str]) -> tuple[Console, Console]:
    out, err = Console(), Console(stderr=True)
    if "COLUMNS" not in environ:
        if not out.is_terminal:
            out = Console(width=_PIPE_WIDTH)
        if not err.is_terminal:
            err = Console(stderr=True, width=_PIPE_WIDTH)
    return out, err


async def _run_operator(args: argparse.Namespace, handler: Handler) -> int:
    settings = resolve_settings(args, os.environ)
    out, err = _consoles(os.environ)
    output = Output(out=out, err=err, as_json=args.json)
    try:
        async with connect(settings) as client:
            return await handler(args, Context(client=client, output=output, clock=SystemClock()))
    except BotfleetError as exc:
        raise from_client(exc) from None


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] in DELEGATED:
        run, _ = DELEGATED[argv[0]]
        return run(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command == "demo":
        return run_demo_command(args)
    if args.command == "dashboard":
        return run_dashboard_command(args)
    handler: Handler = args.handler
    return asyncio.run(_run_operator(args, handler))


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        return _dispatch(arguments)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2, already printed)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE if exc.code else 0
    except CliError as exc:
        _fail(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _fail("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `botfleet jobs | head`: the reader left; nothing more to say to it.
        _silence_stdout()
        return EXIT_ERROR


def _fail(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)


def _silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
