"""The job view's live log pane and attempts, in a real headless Chromium.

A coordinator and a bot whose plugin (BOT_PLUGINS, written to tmp_path) logs a line
every few milliseconds and waits half-way for a file the test creates: the pane shows
the first half while the job still runs, then every line and the attempt that ended.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.chromium import chromium_or_skip, open_browser
from tests.e2e.test_dashboard_browser import _api, _sign_in
from tests.support.processes import Coordinator, logs_on_failure, start_bot, start_coordinator

pytestmark = pytest.mark.e2e

LINES = 200
PLUGIN = f"""
import asyncio
from pathlib import Path

from bot.jobs import op


@op("storyteller")
async def storyteller(job):
    gate = Path(job.payload["gate"])
    for n in range({LINES}):
        if n == {LINES} // 2:
            while not gate.exists():
                await asyncio.sleep(0.01)
        job.log(f"chapter {{n:03d}}", level="warning" if n == 7 else "info")
        await asyncio.sleep(0.005)
    return {{}}
"""


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Coordinator]:
    coordinator = start_coordinator(tmp_path)
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "stories.py").write_text(PLUGIN)
    python_path = os.pathsep.join(filter(None, [str(plugins), os.environ.get("PYTHONPATH")]))
    bot = start_bot(
        tmp_path,
        [coordinator.api],
        "teller",
        env={"BOT_PLUGINS": "stories", "PYTHONPATH": python_path},
    )
    try:
        with logs_on_failure(lambda: [coordinator.process, bot]):
            yield coordinator
    finally:
        bot.stop()
        coordinator.process.stop()


COUNT = "document.querySelectorAll('#job-log-lines li').length"


async def test_the_job_view_shows_its_log_live_and_its_attempts(
    fleet: Coordinator, tmp_path: Path
) -> None:
    chromium = chromium_or_skip()
    gate = tmp_path / "gate"
    job = _api(fleet, "POST", "/jobs", {"op": "storyteller", "payload": {"gate": str(gate)}})
    async with open_browser(chromium, tmp_path / "chromium-profile") as page:
        await page.open(fleet.url + "/")
        await _sign_in(page, fleet.admin_token)
        await page.evaluate("document.getElementById('find-job-id').focus()")
        await page.type_text(job["id"])
        await page.press_enter()
        await page.wait_for("!document.getElementById('job-log').hidden", "the log pane")

        # The first half arrives while the job waits for the gate: lines appear live.
        await page.wait_for(f"{COUNT} === {LINES // 2}", "the first half of the lines")
        assert _api(fleet, "GET", f"/jobs/{job['id']}")["state"] == "running"
        assert "live" in await page.text("#job-log-status")
        assert "running" in await page.text("#job-attempts")
        await asyncio.to_thread(gate.touch)

        await page.wait_for(f"{COUNT} === {LINES}", "every line")
        await page.wait_for(
            "document.getElementById('job-log-status').innerText.includes('complete')",
            "the log complete",
        )
        texts = await page.evaluate(
            "[...document.querySelectorAll('#job-log-lines .joblog-text')].map(n => n.textContent)"
        )
        assert texts == [f"chapter {n:03d}" for n in range(LINES)]
        warned = await page.evaluate(
            "[...document.querySelectorAll('#job-log-lines li.warning')].map(n => n.innerText)"
        )
        assert len(warned) == 1 and "chapter 007" in warned[0]
        await page.wait_for(
            "document.getElementById('job-attempts').innerText.includes('succeeded')",
            "the attempt succeeded",
        )
        rows = await page.evaluate("document.querySelectorAll('#job-attempts tbody tr').length")
        assert rows == 1
        await page.screenshot(tmp_path / "dashboard-joblog.png")

        # Closing the drawer stops following; another job starts afresh.
        await page.click("#detail-close")
        await page.wait_for("document.getElementById('job-log').hidden", "the pane hidden")
        assert json.loads(json.dumps(page.errors)) == []
        assert page.csp_violations == []  # joblog.js and joblog.css run under the policy
