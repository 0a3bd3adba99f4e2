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

ACTIONS = ("list", "add", "pause", "resume", "delete")


def add_schedule_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: Sequence[argparse.ArgumentParser],
) -> None:
    schedules = subparsers.add_parser(
        "schedules",
        parents=parents,
        help="recurring jobs: list, add, pause, resume and delete schedules",
        description="With no action: list the schedules, their next run and last job. "
        "`add NAME (--cron EXPR | --every 30s) OP [KEY=VALUE…]` creates or replaces one; "
        "each due time makes one job. `pause`, `resume` and `delete NAME` act on one.",
    )
    schedules.add_argument("action", nargs="?", choices=ACTIONS, default="list", metavar="ACTION")
    schedules.add_argument("name", nargs="?", metavar="NAME")
    schedules.add_argument("op", nargs="?", metavar="OP", help="add: the jobs' operation")
    schedules.add_argument("fields", nargs="*", metavar="KEY=VALUE", help="add: payload fields")
    when = schedules.add_mutually_exclusive_group()
    when.add_argument("--cron", metavar="EXPR", help="add: a cron expression, e.g. '*/5 * * * *'")
    when.add_argument(
        "--every", type=duration, metavar="DURATION", help="add: a fixed interval, e.g. 30s or 1h"
    )
    schedules.add_argument(
        "--timezone", default="UTC", metavar="TZ", help="add: the cron's time zone (default UTC)"
    )
    schedules.add_argument("--payload", metavar="JSON", help="add: the payload as a JSON object")
    schedules.add_argument("--priority", type=int, default=0, help="add: the jobs' priority")
    schedules.add_argument("--max-attempts", type=positive_int, metavar="N", help="default 3")
    schedules.add_argument("--job-timeout", type=positive_float, metavar="S", help="job timeout")
    schedules.add_argument("--paused", action="store_true", help="add: create it paused")
    schedules.set_defaults(handler=schedules_command)


async def schedules_command(args: argparse.Namespace, ctx: Context) -> int:
    if args.action == "add":
        return await _add(args, ctx)
    if args.action != "list" and args.op:
        raise UsageError(f"schedules {args.action} takes one NAME")
    if args.action in ("pause", "resume", "delete"):
        return await _act(args.action, args.name, ctx)
    if args.name:
        raise UsageError("schedules list takes no NAME")
    schedules = await ctx.client.schedules()
    if ctx.output.as_json:
        ctx.output.json(wire.ScheduleList(schedules=schedules))
    elif not schedules:
        ctx.output.note("no schedules; add one with `botfleet schedules add NAME --every 1m OP`")
    else:
        ctx.output.show(schedules_table(schedules, ctx.clock.now()))
    return EXIT_OK


async def _add(args: argparse.Namespace, ctx: Context) -> int:
    if not args.name or not args.op:
        raise UsageError("schedules add: give NAME and OP, e.g. `add tick --every 1m sum`")
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


async def _act(action: str, name: str | None, ctx: Context) -> int:
    if not name:
        raise UsageError(f"schedules {action}: which schedule? give its NAME")
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
