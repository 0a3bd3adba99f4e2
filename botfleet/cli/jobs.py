"""`botfleet submit`, `jobs`, `job`, `cancel`, `retry`."""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from botfleet.cli.argtypes import label_pair, non_negative_float, positive_float, positive_int
from botfleet.cli.context import Context
from botfleet.cli.errors import EXIT_JOBS_FAILED, EXIT_OK
from botfleet.cli.joblogs import attempts_table
from botfleet.cli.payload import build_payload
from botfleet.cli.progress import StateProgress
from botfleet.cli.render import JOB_STATES, counts_table, job_detail, jobs_table, shorten
from botfleet.cli.waiting import wait_for_jobs
from botfleet.protocol import messages as m

_EXAMPLE_ERRORS = 5


def add_job_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: Sequence[argparse.ArgumentParser],
) -> None:
    submit = subparsers.add_parser(
        "submit",
        parents=parents,
        help="submit jobs",
        description="Submit a job (or --count copies of it). Payload fields are key=value "
        "(the value is JSON when it parses as JSON, so a=1 is a number; else a string) "
        "or one --payload JSON object (@file.json reads a file).",
    )
    submit.add_argument("op", metavar="OP", help="operation, e.g. sum")
    submit.add_argument("fields", metavar="KEY=VALUE", nargs="*", help="payload fields")
    submit.add_argument("--payload", metavar="JSON", help="the payload as a JSON object")
    submit.add_argument(
        "--count", type=positive_int, default=1, metavar="N", help="submit N copies"
    )
    submit.add_argument(
        "--priority", type=int, default=0, metavar="P", help="higher runs first (default 0)"
    )
    submit.add_argument("--delay", type=non_negative_float, metavar="S", help="run after S s")
    submit.add_argument("--max-attempts", type=positive_int, metavar="N", help="default 3")
    submit.add_argument("--job-timeout", type=positive_float, metavar="S", help="job timeout")
    submit.add_argument(
        "--idempotency-key",
        metavar="K",
        help="submitting again with the same key returns the first job "
        "(with --count N, job i gets the key K:i)",
    )
    submit.add_argument(
        "--requires",
        type=label_pair,
        action="append",
        metavar="KEY=VALUE",
        help="run only on a bot with this label, e.g. gpu=a100; repeatable: every key must "
        "match, and a key given again allows another value (gpu=a100 --requires gpu=h100)",
    )
    submit.add_argument(
        "--after",
        action="append",
        default=[],
        metavar="ID",
        help="wait until job ID has succeeded (repeatable); if it fails or is cancelled, "
        "this job is cancelled",
    )
    submit.add_argument(
        "--limit",
        dest="limits",
        action="append",
        default=[],
        metavar="NAME",
        help="the job falls under this fleet-wide limit (repeatable, at most 4; see "
        "`botfleet limits`)",
    )
    submit.add_argument(
        "--wait",
        action="store_true",
        help="wait until every job has ended, showing progress; exit status 3 if any "
        "did not succeed",
    )
    submit.set_defaults(handler=submit_command)

    jobs = subparsers.add_parser("jobs", parents=parents, help="list jobs, newest first")
    jobs.add_argument("--state", choices=JOB_STATES)
    jobs.add_argument("--op", metavar="OP")
    jobs.add_argument("--limit", type=positive_int, default=20, metavar="N", help="default 20")
    jobs.add_argument("--cursor", help="continue a previous listing")
    jobs.set_defaults(handler=jobs_command)

    job = subparsers.add_parser("job", parents=parents, help="show one job")
    job.add_argument("job_id", metavar="ID")
    job.add_argument("--wait", action="store_true", help="wait until the job has ended")
    job.set_defaults(handler=job_command)

    cancel = subparsers.add_parser("cancel", parents=parents, help="cancel a queued/running job")
    cancel.add_argument("job_id", metavar="ID")
    cancel.set_defaults(handler=cancel_command)

    retry = subparsers.add_parser("retry", parents=parents, help="queue a failed job again")
    retry.add_argument("job_id", metavar="ID")
    retry.set_defaults(handler=retry_command)


# ---------------------------------------------------------------- submit


def jobs_from_args(args: argparse.Namespace) -> list[m.SubmitJob]:
    payload = build_payload(args.fields, args.payload)
    requires = _requires(getattr(args, "requires", None))
    count: int = args.count
    jobs = []
    for index in range(count):
        key = args.idempotency_key
        if key is not None and count > 1:
            key = f"{key}:{index}"
        job = m.SubmitJob(
            op=args.op,
            payload=dict(payload),
            priority=args.priority,
            delay_ms=round(args.delay * 1000) if args.delay else None,
            timeout_s=args.job_timeout,
            idempotency_key=key,
            requires=requires,
            after=list(args.after),
            limits=list(getattr(args, "limits", None) or ()),
        )
        if args.max_attempts is not None:
            job.max_attempts = args.max_attempts
        jobs.append(job)
    return jobs


def _requires(pairs: Sequence[tuple[str, str]] | None) -> dict[str, str | list[str]] | None:
    """`--requires` pairs as submit's `requires`: one value, or the values allowed."""
    if not pairs:
        return None
    allowed: dict[str, list[str]] = {}
    for key, value in pairs:
        values = allowed.setdefault(key, [])
        if value not in values:
            values.append(value)
    return {key: values[0] if len(values) == 1 else values for key, values in allowed.items()}


async def submit_jobs(ctx: Context, jobs: Sequence[m.SubmitJob]) -> list[str]:
    if len(jobs) == 1:
        return [(await ctx.client.submit(jobs[0])).id]
    with ctx.output.err.status(f"submitting {len(jobs)} jobs"):
        return [handle.id for handle in await ctx.client.submit_many(jobs)]


async def submit_command(args: argparse.Namespace, ctx: Context) -> int:
    jobs = jobs_from_args(args)
    ids = await submit_jobs(ctx, jobs)
    out = ctx.output
    if not args.wait:
        if out.as_json:
            out.json({"ids": ids})
        elif len(ids) == 1:
            out.show(ids[0])
        else:
            out.show(f"submitted {len(ids)} {args.op} jobs: {ids[0]} … {ids[-1]}")
        return EXIT_OK
    out.note(f"submitted {len(ids)} {args.op} job{'s' if len(ids) != 1 else ''}; waiting")
    with StateProgress(out.err, total=len(ids), description=args.op) as bar:
        finished = await wait_for_jobs(ctx.client, ids, bar.update)
    views = [finished[job_id] for job_id in ids]
    if out.as_json:
        out.json(views[0] if len(views) == 1 else views)
    elif len(views) == 1:
        out.show(job_detail(views[0], ctx.clock.now()))
    else:
        out.show(batch_summary(views))
    return EXIT_OK if all(view.state == "succeeded" for view in views) else EXIT_JOBS_FAILED


def batch_summary(views: Sequence[m.JobView]) -> Table:
    counts: Counter[str] = Counter(view.state for view in views)
    table = counts_table(f"{len(views)} jobs", counts, JOB_STATES)
    failed = [view for view in views if view.state != "succeeded"]
    for view in failed[:_EXAMPLE_ERRORS]:
        table.add_row(Text(view.id, style="dim"), Text(shorten(view.error or view.state, 80)))
    return table


# ---------------------------------------------------------------- listing and one job


async def jobs_command(args: argparse.Namespace, ctx: Context) -> int:
    page = await ctx.client.page(state=args.state, op=args.op, limit=args.limit, cursor=args.cursor)
    if ctx.output.as_json:
        ctx.output.json(page)
        return EXIT_OK
    if not page.jobs:
        ctx.output.note("no jobs" + _filters(args))
        return EXIT_OK
    ctx.output.show(jobs_table(page.jobs, ctx.clock.now()))
    if page.next_cursor:
        ctx.output.note(f"more: botfleet jobs --cursor {page.next_cursor}{_flags(args)}")
    return EXIT_OK


def _filters(args: argparse.Namespace) -> str:
    parts = [f"{name}={value}" for name, value in (("state", args.state), ("op", args.op)) if value]
    return f" with {' '.join(parts)}" if parts else ""


def _flags(args: argparse.Namespace) -> str:
    pairs = (("--state", args.state), ("--op", args.op), ("--limit", args.limit))
    return "".join(f" {flag} {value}" for flag, value in pairs if value)


async def job_command(args: argparse.Namespace, ctx: Context) -> int:
    if args.wait:
        with ctx.output.err.status(f"waiting for {args.job_id}"):
            view = await ctx.client.get(args.job_id, wait_ms=10_000)
            while view.state not in m.TERMINAL_STATES:
                view = await ctx.client.get(args.job_id, wait_ms=10_000)
    else:
        view = await ctx.client.get(args.job_id)
    _show_job(ctx, view)
    if not ctx.output.as_json:
        attempts = await ctx.client.attempts(args.job_id)
        if attempts:
            ctx.output.show(attempts_table(attempts, ctx.clock.now()))
    return EXIT_OK


async def cancel_command(args: argparse.Namespace, ctx: Context) -> int:
    _show_change(ctx, await ctx.client.cancel(args.job_id))
    return EXIT_OK


async def retry_command(args: argparse.Namespace, ctx: Context) -> int:
    _show_change(ctx, await ctx.client.retry(args.job_id))
    return EXIT_OK


def _show_job(ctx: Context, view: m.JobView) -> None:
    if ctx.output.as_json:
        ctx.output.json(view)
    else:
        ctx.output.show(job_detail(view, ctx.clock.now()))


def _show_change(ctx: Context, view: m.JobView) -> None:
    if ctx.output.as_json:
        ctx.output.json(view)
    else:
        ctx.output.show(f"{view.id} {view.state}")
