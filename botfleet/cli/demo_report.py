"""The demo's jobs (a mix with a few deliberate mistakes) and its closing summary."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from botfleet.cli.render import compact_json, shorten
from botfleet.protocol import messages as m

# Every 100 jobs, these few carry a payload the bot must refuse, so failures show.
_INVALID_PAYLOADS: Mapping[int, dict[str, object]] = {
    37: {"a": 1},  # `b` missing
    73: {"a": "seven", "b": 2},  # a string where a number belongs
}


def demo_jobs(count: int, seed: int = 6) -> list[m.SubmitJob]:
    """Sums and subtractions of random numbers; about 2 in 100 are invalid."""
    rng = random.Random(seed)
    jobs = []
    for index in range(count):
        op = "sum" if index % 2 == 0 else "subtract"
        invalid = _INVALID_PAYLOADS.get(index % 100)
        if invalid is not None:
            payload = dict(invalid)
        else:
            payload = {"a": rng.randint(-1000, 1000), "b": rng.randint(-1000, 1000)}
        jobs.append(m.SubmitJob(op=op, payload=payload, metadata={"source": "botfleet demo"}))
    return jobs


@dataclass(frozen=True, slots=True)
class DemoOutcome:
    submitted: int
    counts: Mapping[str, int]  # jobs by final state
    elapsed_s: float  # from the first submission to the last job ending
    per_bot: Mapping[str, Mapping[str, int]]  # bot name -> state -> count
    failures: Sequence[m.JobView]  # examples


@dataclass(frozen=True, slots=True)
class WhereNext:
    server: str
    coordinator_dir: str  # the coordinator's state folder: database and tokens
    logs_dir: str
    kept_running: bool


def tally_by_bot(jobs: Sequence[m.JobView], names: Mapping[str, str]) -> dict[str, Counter[str]]:
    per_bot: dict[str, Counter[str]] = {}
    for job in jobs:
        if job.state not in m.TERMINAL_STATES:
            continue
        bot = names.get(job.bot_id or "", job.bot_id or "(none)")
        per_bot.setdefault(bot, Counter())[job.state] += 1
    return per_bot


def summary(outcome: DemoOutcome, where: WhereNext) -> RenderableType:
    rate = outcome.submitted / outcome.elapsed_s if outcome.elapsed_s > 0 else 0.0
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("submitted", str(outcome.submitted))
    head.add_row("succeeded", Text(str(outcome.counts.get("succeeded", 0)), style="green"))
    head.add_row("failed", Text(str(outcome.counts.get("failed", 0)), style="red"))
    if outcome.counts.get("cancelled"):
        head.add_row("cancelled", str(outcome.counts["cancelled"]))
    head.add_row("throughput", f"{rate:.0f} jobs/s ({outcome.elapsed_s:.1f} s)")

    bots = Table(title="Jobs per bot", title_justify="left", box=None, header_style="bold")
    bots.add_column("BOT")
    bots.add_column("SUCCEEDED", justify="right")
    bots.add_column("FAILED", justify="right")
    for name in sorted(outcome.per_bot):
        counts = outcome.per_bot[name]
        bots.add_row(name, str(counts.get("succeeded", 0)), str(counts.get("failed", 0)))

    errors = Table(title="Example failures", title_justify="left", box=None, header_style="bold")
    errors.add_column("JOB", no_wrap=True)
    errors.add_column("PAYLOAD", no_wrap=True)
    errors.add_column("ERROR", overflow="fold")
    for job in outcome.failures:
        errors.add_row(
            job.id, shorten(compact_json(job.payload), 30), shorten(job.error or "", 100)
        )

    title = Text("\nbotfleet demo: the run", style="bold")
    return Group(title, head, Text(), bots, Text(), errors, Text(), _where_next(where))


def _where_next(where: WhereNext) -> Table:
    table = Table(title="Where to look next", title_justify="left", box=None, show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    # The admin token is named by its file only (see docs/security.md): the commands
    # given --state-dir read it from there.
    state = f"--state-dir {where.coordinator_dir}"
    if where.kept_running:
        server = f"--server {where.server} {state}"
        table.add_row("dashboard", f"botfleet dashboard {server}  opens {where.server}/ signed in")
        table.add_row("failed jobs", f"botfleet jobs --state failed {server}")
    else:
        table.add_row(
            "dashboard",
            f"botfleet server {state}  reopens this run's database; then "
            f"botfleet dashboard {state}  opens http://127.0.0.1:8000/ signed in",
        )
        table.add_row("failed jobs", f"botfleet jobs --state failed {state}  (with that server up)")
        table.add_row("live", "botfleet demo --keep  keeps everything running after the summary")
    table.add_row("logs", where.logs_dir)
    return table
