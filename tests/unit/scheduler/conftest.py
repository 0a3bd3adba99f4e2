from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.testing import standalone_scheduler
from bot.work.scheduler import Scheduler

MakeScheduler = Callable[..., Scheduler]


@pytest.fixture
def make_scheduler(tmp_path: Path) -> Iterator[MakeScheduler]:
    """`standalone_scheduler` in tmp_path, its outbox closed after the test."""
    made: list[Scheduler] = []

    def make(api: Any, **options: Any) -> Scheduler:
        scheduler = standalone_scheduler(api, options.pop("state_dir", tmp_path), **options)
        made.append(scheduler)
        return scheduler

    yield make
    for scheduler in made:
        scheduler.outbox.close()
