"""How the command line shows things: rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from botfleet.clock import parse_rfc3339
from botfleet.protocol import messages as m

STATE_STYLES = {
    "queued": "cyan",
    "running": "yellow",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "magenta",
    "online": "green",
    "offline": "dim",
}
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
_SHORT = 60


@dataclass(frozen=True, slots=True)
class Output:
    """Where results (stdout) and messages (stderr) go, and in which form."""

    out: Console
    err: Console
    as_json: bool = False

    def json(self, value: Any) -> None:
        """Plain JSON on stdout, no colours or wrapping, so `jq` can read it."""
        text = msgspec.json.format(msgspec.json.encode(value), indent=2).decode()
        self.out.file.write(text + "\n")
        self.out.file.flush()

    def json_line(self, value: Any) -> None:
        """One compact JSON document per line (a stream: `jq -c` reads it as it comes)."""
        self.out.file.write(msgspec.json.encode(value).decode() + "\n")
        self.out.file.flush()

    def show(self, renderable: RenderableType) -> None:
        self.out.print(renderable)

    def note(self, text: str) -> None:
        self.err.print(text, highlight=False)


def state_text(state: str) -> Text:
    return Text(state, style=STATE_STYLES.get(state, ""))


def ago(timestamp: str | None, now: datetime) -> str:
    if not timestamp:
        return "-"
    try:
        seconds = (now - parse_rfc3339(timestamp)).total_seconds()
    except ValueError:
        return timestamp
    if seconds < 0:
        return "in " + _duration(-seconds)
    return _duration(seconds) + " ago"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def shorten(text: str, width: int = _SHORT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def outcome(job: m.JobView) -> str:
    if job.error:
        return shorten(job.error)
    if job.result is not None:
        return shorten(compact_json(job.result))
    if job.progress is not None:
        return f"{job.progress:.0%}"
    return ""


# ---------------------------------------------------------------- jobs


def attempts_used(job: m.JobView) -> int:
    """The attempts charged against max_attempts; `attempt` from a coordinator too old to
    say (it is the fencing number, which lost claims and retries also raise)."""
    return job.attempt if isinstance(job.attempts_used, msgspec.UnsetType) else job.attempts_used


def attempts_detail(job: m.JobView) -> str:
    """Used of max, and the attempt number where it differs: bot logs and reports name it."""
    used = attempts_used(job)
    text = f"{used} of {job.max_attempts}"
    return text if used == job.attempt else f"{text} (attempt #{job.attempt})"


def jobs_table(jobs: Iterable[m.JobView], now: datetime) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("ID", no_wrap=True)
    table.add_column("OP", no_wrap=True)
    table.add_column("STATE", no_wrap=True)
    table.add_column("ATTEMPTS", justify="right", no_wrap=True)
    table.add_column("BOT", no_wrap=True)
    table.add_column("CREATED", no_wrap=True)
    table.add_column("RESULT / ERROR", overflow="fold")
    for job in jobs:
        table.add_row(
            job.id,
            job.op,
            state_text(job.state),
            f"{attempts_used(job)}/{job.max_attempts}",
            job.bot_id or "-",
            ago(job.created_at, now),
            outcome(job),
        )
    return table


def job_detail(job: m.JobView, now: datetime) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    rows: list[tuple[str, str | Text]] = [
        ("id", job.id),
        ("op", job.op),
        ("state", state_text(job.state)),
        ("attempts", attempts_detail(job)),
        ("priority", str(job.priority)),
        ("payload", compact_json(job.payload)),
    ]
    if job.result is not None:
        rows.append(("result", compact_json(job.result)))
    if job.error:
        rows.append(("error", Text(job.error, style="red")))
    if job.progress is not None:
        message = f" {job.progress_message}" if job.progress_message else ""
        rows.append(("progress", f"{job.progress:.0%}{message}"))
    rows.append(("bot", job.bot_id or "-"))
    for label, moment in (
        ("created", job.created_at),
        ("run at", job.run_at),
        ("started", job.started_at),
        ("finished", job.finished_at),
        ("lease until", job.lease_until),
    ):
        if moment and not (label == "run at" and moment == job.created_at):
            rows.append((label, f"{moment} ({ago(moment, now)})"))
    if job.timeout_s is not None:
        rows.append(("timeout", f"{job.timeout_s:g} s"))
    if job.idempotency_key:
        rows.append(("idempotency key", job.idempotency_key))
    if job.submitted_by:
        rows.append(("submitted by", job.submitted_by))
    if job.metadata:
        rows.append(("metadata", compact_json(job.metadata)))
    if job.requires:
        rows.append(("requires", labels_text(job.requires)))
    if job.limits:
        rows.append(("limits", ", ".join(job.limits)))
    if job.waiting_for:
        rows.append(("waiting for", Text(job.waiting_for, style="yellow")))
    for label, value in rows:
        grid.add_row(label, value)
    return grid


def counts_table(title: str, counts: Mapping[str, int], order: Iterable[str] = ()) -> Table:
    table = Table(title=title, title_justify="left", box=None, header_style="bold")
    table.add_column("STATE", no_wrap=True)
    table.add_column("COUNT", justify="right")
    keys = [key for key in order if key in counts] + sorted(k for k in counts if k not in order)
    for key in keys:
        table.add_row(state_text(key), str(counts[key]))
    return table


# ---------------------------------------------------------------- bots


def assignment_text(assignment: m.Assignment) -> str:
    ops = ",".join(assignment.operations) if assignment.operations else "all"
    paused = " paused" if assignment.paused else ""
    return f"{ops} ×{assignment.max_concurrency}{paused}"


def labels_text(labels: Mapping[str, str | Sequence[str]]) -> str:
    """`gpu=a100,region=eu`; a choice of values reads `gpu=a100|h100`."""
    if not labels:
        return "-"
    return ",".join(
        f"{key}={value if isinstance(value, str) else '|'.join(value)}"
        for key, value in labels.items()
    )


def bot_state(bot: m.BotView) -> Text:
    if bot.revoked_at is not None:
        return Text("revoked", style="bold red")
    text = state_text(bot.state)
    if bot.lifecycle and bot.lifecycle != bot.state:
        text.append(f" ({bot.lifecycle})", style="dim")
    return text


def bots_table(bots: Iterable[m.BotView], now: datetime) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("ID", no_wrap=True)
    table.add_column("NAME", no_wrap=True)
    table.add_column("STATE", no_wrap=True)
    table.add_column("HEARTBEAT", no_wrap=True)
    table.add_column("RUNNING", justify="right", no_wrap=True)
    table.add_column("ASSIGNMENT", overflow="fold")
    table.add_column("LABELS", overflow="fold")
    table.add_column("COMMAND", no_wrap=True)
    table.add_column("VERSION", no_wrap=True)
    for bot in bots:
        table.add_row(
            bot.id,
            bot.name,
            bot_state(bot),
            ago(bot.last_heartbeat, now),
            # Prefetched jobs not started yet are held apart from running ones.
            str(len(bot.running)) + (f" +{len(bot.held)} held" if bot.held else ""),
            assignment_text(bot.assignment),
            labels_text(bot.labels),
            bot.pending_command or "-",
            bot.version,
        )
    return table


# ---------------------------------------------------------------- stats


def stats_view(stats: m.Stats) -> RenderableType:
    jobs = counts_table("Jobs", stats.jobs, JOB_STATES)
    by_op = Table(title="Jobs by operation", title_justify="left", box=None, header_style="bold")
    by_op.add_column("OP", no_wrap=True)
    for state in JOB_STATES:
        by_op.add_column(state.upper(), justify="right")
    for op_name in sorted(stats.jobs_by_op):
        counts = stats.jobs_by_op[op_name]
        by_op.add_row(op_name, *(str(counts.get(state, 0)) for state in JOB_STATES))
    bots = counts_table("Bots", stats.bots, ("online", "offline"))
    throughput = stats.throughput
    lines = Text(
        f"Throughput over the last {throughput.window_s} s: {throughput.per_second:.1f} jobs/s "
        f"({throughput.succeeded} succeeded, {throughput.failed} failed)"
    )
    if stats.oldest_queued_age_s is not None:
        lines.append(f"\nOldest queued job waits for {_duration(stats.oldest_queued_age_s)}")
    return Group(jobs, Text(), by_op, Text(), bots, Text(), lines)
