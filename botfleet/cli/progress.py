"""A live progress bar for many jobs: counts by state, rate and time remaining."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column
from rich.text import Text

from botfleet.cli.render import STATE_STYLES
from botfleet.protocol.messages import TERMINAL_STATES

_SHOWN_STATES = ("succeeded", "failed", "cancelled", "running", "queued")


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.0f} jobs/s" if speed else "- jobs/s", style="progress.data.speed")


class _StatesColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        counts: Mapping[str, int] = task.fields.get("counts", {})
        text = Text()
        for state in _SHOWN_STATES:
            if counts.get(state):
                if text:
                    text.append("  ")
                text.append(f"{state} {counts[state]}", style=STATE_STYLES[state])
        return text


class StateProgress:
    """`with StateProgress(console, total) as bar: bar.update({"succeeded": 3, …})`."""

    def __init__(self, console: Console, total: int, description: str = "jobs") -> None:
        self._progress = Progress(
            SpinnerColumn(finished_text="✓"),
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            _StatesColumn(table_column=Column(no_wrap=True, overflow="ellipsis")),
            _RateColumn(),
            TimeRemainingColumn(),
            TimeElapsedColumn(),
            console=console,
            refresh_per_second=8,
        )
        self._task = self._progress.add_task(description, total=total, counts={})

    def __enter__(self) -> StateProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def update(self, counts: Mapping[str, int]) -> None:
        done = sum(count for state, count in counts.items() if state in TERMINAL_STATES)
        self._progress.update(self._task, completed=done, counts=dict(counts))
