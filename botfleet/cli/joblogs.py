"""`botfleet logs JOB [--follow]`, and the attempts table `botfleet job ID` shows."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from datetime import datetime

from rich.table import Table
from rich.text import Text

from botfleet.cli.argtypes import positive_int
from botfleet.cli.context import Context
from botfleet.cli.errors import EXIT_JOBS_FAILED, EXIT_OK
from botfleet.cli.render import ago, state_text
from botfleet.protocol import joblogs as wire

LEVEL_STYLES = {"debug": "dim", "warning": "yellow", "error": "red", "critical": "bold red"}


def add_log_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: Sequence[argparse.ArgumentParser],
) -> None:
    logs = subparsers.add_parser(
        "logs",
        parents=parents,
        help="print a job's log lines",
        description="Print the lines a job's handler logged, every attempt's in order. "
        "With --follow, keep printing new lines until the job ends; the exit status is "
        "then 0 if it succeeded and 3 if not.",
    )
    logs.add_argument("job_id", metavar="JOB")
    logs.add_argument("--follow", "-f", action="store_true", help="print new lines as they come")
    logs.add_argument("--attempt", type=positive_int, metavar="N", help="only attempt N")
    logs.set_defaults(handler=logs_command)


async def logs_command(args: argparse.Namespace, ctx: Context) -> int:
    client, output = ctx.client, ctx.output
    async for line in client.logs(args.job_id, follow=args.follow, attempt=args.attempt):
        if output.as_json:
            output.json_line(line)
        else:
            output.out.print(log_line_text(line), soft_wrap=True, highlight=False)
    if not args.follow:
        return EXIT_OK
    job = await client.get(args.job_id)
    return EXIT_OK if job.state == "succeeded" else EXIT_JOBS_FAILED


def log_line_text(line: wire.StoredLogLine) -> Text:
    text = Text(f"{line.ts} ", style="dim")
    text.append(f"{line.level.upper():<8}", style=LEVEL_STYLES.get(line.level, ""))
    text.append(f"#{line.attempt} ", style="dim")
    text.append(line.text)
    return text


def attempts_table(attempts: Iterable[wire.AttemptView], now: datetime) -> Table:
    table = Table(title="attempts", title_justify="left")
    for column in ("#", "bot", "started", "ended", "outcome"):
        table.add_column(column, no_wrap=True)
    table.add_column("error", overflow="fold")
    for attempt in attempts:
        table.add_row(
            str(attempt.attempt),
            attempt.bot_id,
            ago(attempt.started_at, now),
            ago(attempt.ended_at, now),
            state_text(attempt.outcome) if attempt.outcome else Text("running", style="cyan"),
            Text(attempt.error or "", style="red"),
        )
    return table
