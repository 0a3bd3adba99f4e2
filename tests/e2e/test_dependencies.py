"""A dependency graph with real processes: a coordinator and two bots run a diamond
submitted in one bulk call in order, and a failure at the top cancels the rest.

Order is read from the job views (started_at and finished_at, both set by the
coordinator); every wait polls the API up to a generous deadline.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from botfleet.clock import parse_rfc3339
from tests.support.processes import (
    Coordinator,
    Process,
    http_json,
    logs_on_failure,
    start_bot,
    start_coordinator,
    wait_until,
)

pytestmark = pytest.mark.e2e

DEADLINE_S = 60.0
TERMINAL = {"succeeded", "failed", "cancelled"}
PLUGIN = """
import asyncio

from bot.jobs import op


@op("nap")
async def nap(job):
    await asyncio.sleep(float(job.payload["seconds"]))
    if job.payload.get("fail"):
        raise ValueError("asked to fail")
    return {}
"""


@dataclass
class Rig:
    coordinator: Coordinator

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = http_json(
            self.coordinator.api + path, method, body, self.coordinator.admin_token
        )
        assert 200 <= status < 300, f"{method} {path}: HTTP {status} {answer}"
        return answer

    def views(self, ids: list[str]) -> list[dict[str, Any]]:
        return [self.admin("GET", f"/jobs/{job_id}") for job_id in ids]

    def all_ended(self, ids: list[str]) -> bool:
        return all(view["state"] in TERMINAL for view in self.views(ids))


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    coordinator = start_coordinator(tmp_path, extra_args=["--heartbeat-interval", "0.5"])
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "naps.py").write_text(PLUGIN)
    python_path = os.pathsep.join(filter(None, [str(plugins), os.environ.get("PYTHONPATH")]))
    env = {"BOT_PLUGINS": "naps", "PYTHONPATH": python_path, "BOT_DRAIN_GRACE_SEC": "1"}
    bots: list[Process] = [
        start_bot(tmp_path, [coordinator.api], name, env=env) for name in ("left", "right")
    ]
    processes = [coordinator.process, *bots]
    try:
        with logs_on_failure(lambda: processes):
            yield Rig(coordinator)
    finally:
        for process in reversed(processes):
            process.stop()


def _nap(seconds: float, after: list[str], fail: bool = False) -> dict[str, Any]:
    payload: dict[str, Any] = {"seconds": seconds, "fail": fail}
    return {"op": "nap", "payload": payload, "after": after, "max_attempts": 1}


def _moment(view: dict[str, Any], field: str) -> Any:
    assert view[field] is not None, view
    return parse_rfc3339(view[field])


def test_a_diamond_in_one_bulk_call_runs_in_order(rig: Rig) -> None:
    graph = [_nap(0.3, []), _nap(0.5, ["#0"]), _nap(0.2, ["#0"]), _nap(0.1, ["#1", "#2"])]
    ids = rig.admin("POST", "/jobs/bulk", {"jobs": graph})["ids"]
    bottom = rig.admin("GET", f"/jobs/{ids[3]}")
    assert bottom["state"] == "queued" and ids[1] in bottom["waiting_for"]

    wait_until(lambda: rig.all_ended(ids), DEADLINE_S, "the diamond ran")

    top, left, right, last = rig.views(ids)
    assert {view["state"] for view in (top, left, right, last)} == {"succeeded"}
    for branch in (left, right):
        assert _moment(branch, "started_at") >= _moment(top, "finished_at")
    assert _moment(last, "started_at") >= max(
        _moment(left, "finished_at"), _moment(right, "finished_at")
    )


def test_a_failed_top_cancels_the_graph_below_it(rig: Rig) -> None:
    graph = [_nap(0.1, [], fail=True), _nap(0.1, ["#0"]), _nap(0.1, ["#1"])]
    ids = rig.admin("POST", "/jobs/bulk", {"jobs": graph})["ids"]

    wait_until(lambda: rig.all_ended(ids), DEADLINE_S, "the graph ended")

    top, middle, last = rig.views(ids)
    assert top["state"] == "failed"
    assert (middle["state"], middle["error"]) == ("cancelled", f"dependency {ids[0]} failed")
    assert (last["state"], last["error"]) == ("cancelled", f"dependency {ids[1]} cancelled")
    assert middle["started_at"] is None and last["started_at"] is None
