"""The dashboard in a real headless Chromium, during a run: a coordinator, bots, jobs.

Chromium comes from Debian (`apt-get install -y chromium`; `make browser` does it).
Where it is missing the test skips and says so, unless BOTFLEET_REQUIRE_BROWSER=1 (as
`.ci/run` sets it), where it fails.
The screenshot is kept in the test's tmp_path as dashboard.png.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.chromium import Page, chromium_or_skip, open_browser
from tests.support.processes import (
    Coordinator,
    Process,
    start_bot,
    start_coordinator,
    wait_until,
    wait_until_async,
)

pytestmark = pytest.mark.e2e

BOT_NAMES = ("dash-alpha", "dash-beta")


def _api(coordinator: Coordinator, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        coordinator.api + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={**coordinator.admin_headers, "Content-Type": "application/json"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[Coordinator, list[Process]]]:
    coordinator = start_coordinator(tmp_path, extra_args=["--heartbeat-interval", "1"])
    bots = [start_bot(tmp_path, [coordinator.api], name) for name in BOT_NAMES]
    try:
        yield coordinator, bots
    finally:
        for bot in bots:
            bot.stop()
        coordinator.process.stop()


def _run_some_jobs(coordinator: Coordinator) -> dict[str, int]:
    jobs = [{"op": "sum", "payload": {"a": i, "b": 1}} for i in range(40)]
    jobs += [{"op": "subtract", "payload": {"a": "seven", "b": 1}, "max_attempts": 1}]
    _api(coordinator, "POST", "/jobs/bulk", {"jobs": jobs})

    def all_done() -> bool:
        counts = _api(coordinator, "GET", "/stats")["jobs"]
        return counts.get("succeeded", 0) + counts.get("failed", 0) >= len(jobs)

    wait_until(all_done, what="the jobs to finish")
    counts: dict[str, int] = _api(coordinator, "GET", "/stats")["jobs"]
    return counts


async def _eventually(check: Callable[[], bool], what: str) -> None:
    """Poll a blocking check off the event loop, so the browser connection keeps being served."""

    async def condition() -> bool:
        return await asyncio.to_thread(check)

    await wait_until_async(condition, what=what)


async def _sign_in(page: Page, token: str) -> None:
    await page.wait_for("document.getElementById('token-dialog').open", "the token prompt")
    await page.type_text(token)  # the prompt has the focus
    await page.press_enter()


async def test_dashboard_shows_the_fleet_and_acts_on_it(
    fleet: tuple[Coordinator, list[Process]], tmp_path: Path
) -> None:
    chromium = chromium_or_skip()
    coordinator, _ = fleet
    wait_until(
        lambda: (
            {bot["name"] for bot in _api(coordinator, "GET", "/bots")["bots"]} >= set(BOT_NAMES)
        ),
        what="both bots registered",
    )
    async with open_browser(chromium, tmp_path / "chromium-profile") as page:
        await page.open(coordinator.url + "/")

        # A wrong token is refused and the prompt says so.
        await _sign_in(page, "not-the-token")
        await page.wait_for(
            "!document.getElementById('token-error').hidden", "the refused-token message"
        )
        assert "refused the token" in await page.text("#token-error")
        await page.evaluate("document.getElementById('token-input').focus()")
        await _sign_in(page, coordinator.admin_token)
        await page.wait_for(
            "document.getElementById('live').classList.contains('ok')", "live updates"
        )

        # Jobs run while the page is open: it follows them live.
        counts = await asyncio.to_thread(_run_some_jobs, coordinator)
        parked = _api(
            coordinator, "POST", "/jobs", {"op": "sum", "payload": {}, "delay_ms": 600_000}
        )
        for name in BOT_NAMES:
            await page.wait_for(
                f"document.querySelector('#bots tbody').innerText.includes({json.dumps(name)})",
                f"bot {name} in the table",
            )
        # One poll's numbers, all at once: the final counts plus the parked job.
        expected = {
            "succeeded": str(counts["succeeded"]),
            "failed": "1",
            "queued": "1",
            "bots": str(len(BOT_NAMES)),
        }
        await page.wait_for(
            " && ".join(
                f"document.getElementById('count-{key}').innerText === {json.dumps(value)}"
                for key, value in expected.items()
            ),
            f"the counts {expected}",
        )
        await page.wait_for(
            """(() => {
                const line = document.querySelector('#chart polyline.ok');
                if (!line) return false;
                const ys = line.getAttribute('points').split(' ').map((p) => +p.split(',')[1]);
                return Math.min(...ys) < Math.max(...ys);
            })()""",
            "the throughput chart to show the burst of jobs",
        )
        failures = await page.text("#failures")
        assert "seven" in failures or "number" in failures, failures

        shot = await page.screenshot(tmp_path / "dashboard.png")
        assert shot.startswith(b"\x89PNG") and len(shot) > 20_000

        # A retried job counts its attempts afresh: the failed one, retried and failed
        # again, is attempt #2 but has used 1 of its 1 attempt (not "2/1").
        (failed,) = _api(coordinator, "GET", "/jobs?state=failed")["jobs"]
        _api(coordinator, "POST", f"/jobs/{failed['id']}/retry", {})

        def failed_again() -> bool:
            job = _api(coordinator, "GET", f"/jobs/{failed['id']}")
            return (job["state"], job["attempt"], job["attempts_used"]) == ("failed", 2, 1)

        await _eventually(failed_again, "the retried job to fail again")
        row = f"document.querySelector(\"#jobs a[href='#job={failed['id']}']\")"
        await page.wait_for(
            f"{row} !== null && {row}.closest('tr').children[3].innerText === '1/1'",
            "the retried job's row to show 1/1 attempts",
        )
        await page.click(f"#jobs a[href='#job={failed['id']}']")
        await page.wait_for(
            "document.getElementById('detail-fields').innerText.includes('1 of 1 (attempt #2)')",
            "the detail showing 1 of 1 attempts used, attempt #2",
        )
        await page.click("#detail-close")
        await page.wait_for("document.getElementById('job-detail').hidden", "the detail closed")

        # Pause a bot from its row; the coordinator records it.
        alpha = next(
            bot for bot in _api(coordinator, "GET", "/bots")["bots"] if bot["name"] == "dash-alpha"
        )
        await page.click(f"#bots tr[data-bot='{alpha['id']}'] button[data-action='pause']")
        await _eventually(
            lambda: _api(coordinator, "GET", f"/bots/{alpha['id']}")["assignment"]["paused"],
            "the pause to reach the coordinator",
        )
        await page.wait_for(
            f"!!document.querySelector(\"#bots tr[data-bot='{alpha['id']}'] "
            "button[data-action='resume']\")",
            "a Resume button in place of Pause",
        )

        # Open a job by id, cancel it (the confirm dialog is accepted), see it cancelled.
        await page.evaluate("document.getElementById('find-job-id').focus()")
        await page.type_text(parked["id"])
        await page.press_enter()
        await page.wait_for("!document.getElementById('job-detail').hidden", "the job detail panel")
        assert parked["id"] in await page.text("#job-detail")
        await page.click("#detail-cancel")
        await _eventually(
            lambda: _api(coordinator, "GET", f"/jobs/{parked['id']}")["state"] == "cancelled",
            "the cancel to reach the coordinator",
        )
        await page.wait_for(
            "document.getElementById('detail-fields').innerText.includes('cancelled')",
            "the detail showing the job cancelled",
        )
        assert page.dialogs == [f"Cancel job {parked['id']}?"]
        await page.screenshot(tmp_path / "dashboard-job.png")
        assert page.errors == []
        assert page.csp_violations == []


async def test_the_page_runs_under_its_content_security_policy(tmp_path: Path) -> None:
    """The policy is in force (an injected inline script is refused and reported), and the
    dashboard's own files break none of it."""
    chromium = chromium_or_skip()
    coordinator = start_coordinator(tmp_path)
    try:
        async with open_browser(chromium, tmp_path / "chromium-profile") as page:
            await page.open(coordinator.url + "/")
            await page.wait_for("document.getElementById('token-dialog').open", "the token prompt")
            assert page.csp_violations == []
            await page.evaluate(
                """(() => {
                    const script = document.createElement('script');
                    script.textContent = 'window.inlineRan = true';
                    document.body.append(script);
                })()"""
            )
            await page.wait_for_console("Content Security Policy", "the violation report")
            assert await page.evaluate("window.inlineRan === undefined")
            assert page.errors == []
    finally:
        coordinator.process.stop()
