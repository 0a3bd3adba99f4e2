"""`botfleet limits [list]`, `limits set NAME [--max-running N] [--rate R/s] [--burst B]`,
`limits delete NAME` (an operator's calls)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from rich.table import Table

from botfleet.cli.context import Context
from botfleet.cli.errors import EXIT_OK, UsageError
from botfleet.protocol import limits as lim


def rate(text: str) -> float:
    """`5`, `5/s`, `0.5/s` or `30/m` -> starts per second."""
    number, _, unit = text.strip().partition("/")
    seconds = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}.get(unit.strip())
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if seconds is None or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate like 5/s, 0.5/s or 30/m")
    return value / seconds


def add_limit_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: Sequence[argparse.ArgumentParser],
) -> None:
    limits = subparsers.add_parser(
        "limits",
        parents=parents,
        help="set, list and delete fleet-wide limits",
        description="With no action: list the limits, each with its running jobs, the rate its "
        "jobs started at over the last 10 s and the jobs it holds back. "
        "`set NAME` creates or changes one (a cap not given is off); a limit named op:OP "
        "covers every job of OP. `delete NAME` removes one. Jobs name their limits with "
        "`botfleet submit … --limit NAME`.",
    )
    limits.add_argument(
        "action", nargs="?", choices=("list", "set", "delete"), default="list", metavar="ACTION"
    )
    limits.add_argument("name", nargs="?", metavar="NAME")
    limits.add_argument(
        "--max-running", type=int, metavar="N", help="at most N of its jobs run at once"
    )
    limits.add_argument(
        "--rate", type=rate, metavar="R/s", help="its jobs start at most this fast, e.g. 5/s"
    )
    limits.add_argument(
        "--burst", type=int, default=None, metavar="B", help="starts allowed at once (default 1)"
    )
    limits.set_defaults(handler=limits_command)


async def limits_command(args: argparse.Namespace, ctx: Context) -> int:
    if args.action == "set":
        if not args.name:
            raise UsageError("limits set: give the limit's NAME")
        if args.max_running is None and args.rate is None:
            raise UsageError("limits set: give --max-running N, --rate R/s, or both")
        view = await ctx.client.put_limit(
            args.name,
            max_running=args.max_running,
            per_second=args.rate,
            burst=1 if args.burst is None else args.burst,
        )
        _show_one(ctx, view, "set")
        return EXIT_OK
    if args.action == "delete":
        if not args.name:
            raise UsageError("limits delete: give the limit's NAME")
        _show_one(ctx, await ctx.client.delete_limit(args.name), "deleted")
        return EXIT_OK
    if args.name or args.max_running is not None or args.rate is not None or args.burst:
        raise UsageError("limits list takes no NAME, --max-running, --rate or --burst")
    views = await ctx.client.limits()
    if ctx.output.as_json:
        ctx.output.json(lim.LimitList(limits=views))
    elif not views:
        ctx.output.note("no limits; set one with `botfleet limits set NAME --max-running N`")
    else:
        ctx.output.show(limits_table(views))
    return EXIT_OK


def _show_one(ctx: Context, view: lim.LimitView, done: str) -> None:
    if ctx.output.as_json:
        ctx.output.json(view)
    else:
        ctx.output.show(f"limit {view.name} {done}: {describe(view)}")


def describe(view: lim.LimitView) -> str:
    caps = []
    if view.max_running is not None:
        caps.append(f"at most {view.max_running} running")
    if view.per_second is not None:
        caps.append(f"{view.per_second:g}/s, burst {view.burst}")
    return ", ".join(caps) or "no cap"


def limits_table(views: Sequence[lim.LimitView]) -> Table:
    """Each limit's use against its caps: RUNNING of MAX, STARTED (the measured rate)
    against RATE, and the jobs it HOLDS back."""
    table = Table(title=f"{len(views)} limit{'s' if len(views) != 1 else ''}")
    for column in ("NAME", "RUNNING", "MAX RUNNING", "STARTED", "RATE", "BURST", "TOKENS", "HELD"):
        table.add_column(column, no_wrap=column == "NAME")
    for view in views:
        table.add_row(
            view.name,
            str(view.running),
            "-" if view.max_running is None else str(view.max_running),
            f"{view.starts_per_second:g}/s",
            "-" if view.per_second is None else f"{view.per_second:g}/s",
            str(view.burst),
            f"{view.tokens:g}",
            str(view.held_back),
        )
    return table
