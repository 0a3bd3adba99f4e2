"""`botfleet schedules [list]`, `schedules add NAME (--cron EXPR | --every 30s) OP
[KEY=VALUE… | --payload JSON] [--timezone TZ]`, `schedules pause|resume|delete NAME`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import datetime

from rich.table import Table

from botfleet.cli.argtypes import duration, positive_float, positive_int
from botfleet.cli.context import Context
from botfleet.cli.errors import EXIT_OK, UsageError
from botfleet.cli.payload import build_payload
from botfleet.cli.render import ago
from botfleet.protocol import messages as m
from botfleet.protocol import schedules as wire

_ACTION_HELP = {
    "pause": "stop making jobs until resumed",
    "resume": "make jobs again, counting from now",
    "delete": "delete the schedule (the jobs it made stay)",
}


def add_schedule_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: Sequence[argparse.ArgumentParser],
) -> None:
    schedules = subparsers.add_parser(
        "schedules",
        parents=parents,
        help="recurring jobs: list, add, pause, resume and delete schedules",
        description="With no action: list the schedules, their next run and last job. "
        "Each due time of a schedule makes one job, whichever coordinator fires it.",
    )
    schedules.set_defaults(handler=schedules_command, action="list", name=None)
    actions = schedules.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser("list", parents=parents, help="list the schedules (the default)")
    add = actions.add_parser(
        "add",
        parents=parents,
        help="create or replace a schedule",
        description="Create or replace schedule NAME: each due time (by --cron in "
        "--timezone, or --every) makes one OP job with this payload.",
    )
    add.add_argument("name", metavar="NAME")
    add.add_argument("op", metavar="OP", help="the jobs' operation")
    add.add_argument("fields", nargs="*", metavar="KEY=VALUE", help="payload fields")
    when = add.add_mutually_exclusive_group()
    when.add_argument("--cron", metavar="EXPR", help="a cron expression, e.g. '*/5 * * * *'")
    when.add_argument(
        "--every", type=duration, metavar="DURATION", help="a fixed interval, e.g. 30s or 1h"
    )
    add.add_argument(
        "--timezone", default="UTC", metavar="TZ", help="the cron's time zone (default UTC)"
    )
    add.add_argument("--payload", metavar="JSON", help="the payload as a JSON object")
    add.add_argument("--priority", type=int, default=0, help="the jobs' priority (default 0)")
    add.add_argument("--max-attempts", type=positive_int, metavar="N", help="default 3")
    add.add_argument("--job-timeout", type=positive_float, metavar="S", help="job timeout")
    add.add_argument("--paused", action="store_true", help="create it paused")
    for action, text in _ACTION_HELP.items():
        one = actions.add_parser(action, parents=parents, help=text)
        one.add_argument("name", metavar="NAME")


async def schedules_command(args: argparse.Namespace, ctx: Context) -> int:
    if args.action == "add":
        return await _add(args, ctx)
    if args.action in _ACTION_HELP:
        return await _act(args.action, args.name, ctx)
    schedules = await ctx.client.schedules()
    if ctx.output.as_json:
        ctx.output.json(wire.ScheduleList(schedules=schedules))
    elif not schedules:
        ctx.output.note("no schedules; add one with `botfleet schedules add NAME --every 1m OP`")
    else:
        ctx.output.show(schedules_table(schedules, ctx.clock.now()))
    return EXIT_OK


async def _add(args: argparse.Namespace, ctx: Context) -> int:
    if args.cron is None and args.every is None:
        raise UsageError("schedules add: give --cron EXPR or --every DURATION")
    every_s = None
    if args.every is not None:
        every_s = round(args.every)
        if every_s < 1 or every_s != args.every:
            raise UsageError(f"--every: whole seconds, at least 1s, not {args.every}s")
    job = m.SubmitJob(
        op=args.op,
        payload=build_payload(args.fields, args.payload),
        priority=args.priority,
        timeout_s=args.job_timeout,
    )
    if args.max_attempts is not None:
        job.max_attempts = args.max_attempts
    view = await ctx.client.put_schedule(
        args.name, job, cron=args.cron, every_s=every_s, timezone=args.timezone, paused=args.paused
    )
    if ctx.output.as_json:
        ctx.output.json(view)
    else:
        ctx.output.show(f"schedule {view.name}: {when_text(view)}, next {_next(view, ctx)}")
    return EXIT_OK


async def _act(action: str, name: str, ctx: Context) -> int:
    if action == "delete":
        deleted = await ctx.client.delete_schedule(name)
        if ctx.output.as_json:
            ctx.output.json(deleted)
        else:
            ctx.output.show(f"schedule {name} deleted (the jobs it made stay)")
        return EXIT_OK
    view = await ctx.client.pause_schedule(name, paused=action == "pause")
    if ctx.output.as_json:
        ctx.output.json(view)
    else:
        ctx.output.show(f"schedule {name} {action}d, next {_next(view, ctx)}")
    return EXIT_OK


def when_text(view: wire.ScheduleView) -> str:
    if view.cron is not None:
        return f"cron {view.cron} ({view.timezone})"
    return f"every {view.every_s}s"


def _next(view: wire.ScheduleView, ctx: Context) -> str:
    return "paused" if view.next_run_at is None else ago(view.next_run_at, ctx.clock.now())


def schedules_table(schedules: Sequence[wire.ScheduleView], now: datetime) -> Table:
    table = Table(title=f"{len(schedules)} schedule{'s' if len(schedules) != 1 else ''}")
    for column in ("NAME", "WHEN", "OP", "NEXT RUN", "LAST JOB", "LAST DUE"):
        table.add_column(column, no_wrap=column in ("NAME", "LAST JOB"))
    for view in schedules:
        table.add_row(
            view.name,
            when_text(view),
            str(view.job.get("op", "-")),
            "paused" if view.next_run_at is None else ago(view.next_run_at, now),
            view.last_job_id or "-",
            ago(view.last_due_at, now),
        )
    return table
