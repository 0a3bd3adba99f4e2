"""The dashboard's scheduling controls in a real headless Chromium: a coordinator and a
bot with labels (BOT_LABELS), a job that requires a label no bot has and a job after it.

The bots table shows the labels as chips; the job view says why a queued job waits,
with the job it waits for as a link; the schedules panel stays hidden on a coordinator
that answers GET /v1/schedules with 404, and where it has schedules a reader sees them
and an operator pauses and resumes one; nothing breaks the Content-Security-Policy.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from botfleet.cli.dashboard import signed_in_link
from tests.e2e.chromium import Page, chromium_or_skip, open_browser
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

BOT_NAME = "labelled-bot"


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[Coordinator, Process]]:
    coordinator = start_coordinator(tmp_path, extra_args=["--heartbeat-interval", "1"])
    bot = start_bot(tmp_path, [coordinator.api], BOT_NAME, env={"BOT_LABELS": "region=eu,arch=x86"})
    try:
        with logs_on_failure(lambda: [coordinator.process, bot]):
            yield coordinator, bot
    finally:
        bot.stop()
        coordinator.process.stop()


def _bot_id(coordinator: Coordinator) -> str:
    def registered() -> bool:
        return any(bot["name"] == BOT_NAME for bot in coordinator.admin("GET", "/bots")["bots"])

    wait_until(registered, what="the bot registered")
    (bot,) = coordinator.admin("GET", "/bots")["bots"]
    assert bot["labels"] == {"region": "eu", "arch": "x86"}
    return str(bot["id"])


async def _open_job(page: Page, job_id: str) -> None:
    await page.evaluate(
        "(() => { const box = document.getElementById('find-job-id');"
        " box.value = ''; box.focus(); })()"
    )
    await page.type_text(job_id)
    await page.press_enter()
    await page.wait_for(
        f"document.getElementById('detail-title').innerText === {json.dumps(job_id)}",
        f"the job view of {job_id}",
    )


async def test_labels_waiting_jobs_and_the_schedules_panel_only_with_schedules(
    fleet: tuple[Coordinator, Process], tmp_path: Path
) -> None:
    chromium = chromium_or_skip()
    coordinator, _ = fleet
    bot_id = await asyncio.to_thread(_bot_id, coordinator)
    gpu_job = coordinator.admin(
        "POST", "/jobs", {"op": "sum", "payload": {"a": 1, "b": 2}, "requires": {"gpu": "a100"}}
    )
    after_job = coordinator.admin(
        "POST", "/jobs", {"op": "sum", "payload": {"a": 3, "b": 4}, "after": [gpu_job["id"]]}
    )
    status, _ = http_json(coordinator.api + "/schedules", token=coordinator.admin_token)
    assert status in (200, 404)  # 404: a coordinator without schedules

    async with open_browser(chromium, tmp_path / "chromium-profile") as page:
        await page.open(
            signed_in_link(coordinator.url, coordinator.admin_token), lands_on=coordinator.url + "/"
        )
        # The bot's labels, as key=value chips in its row.
        labels = f"#bots tr[data-bot='{bot_id}'] td.labels"
        await page.wait_for(f"!!document.querySelector({json.dumps(labels)})", "the bot's row")
        chips = await page.evaluate(
            f"[...document.querySelectorAll({json.dumps(labels + ' .chip')})]"
            ".map((chip) => chip.innerText)"
        )
        assert chips == ["arch=x86", "region=eu"]

        # The jobs list says a queued job waits.
        row = f"document.querySelector(\"#jobs a[href='#job={after_job['id']}']\")"
        await page.wait_for(
            f"{row} !== null && {row}.closest('tr').innerText.includes('waiting for')",
            "the waiting job's row saying it waits",
        )

        # A job requiring a label no bot has: the job view says so, and shows what it requires.
        await _open_job(page, gpu_job["id"])
        await page.wait_for(
            "(document.getElementById('detail-waiting') || {}).innerText"
            " === 'no online bot has gpu=a100'",
            "the job view saying why the job waits",
        )
        assert "gpu=a100" in await page.text("#detail-fields .chips")

        # A job after it names it, as a link that opens that job.
        await _open_job(page, after_job["id"])
        link = f"#detail-waiting a[href='#job={gpu_job['id']}']"
        await page.wait_for(f"!!document.querySelector({json.dumps(link)})", "the dependency link")
        assert gpu_job["id"] in await page.text("#detail-waiting")
        await page.click(link)
        await page.wait_for(
            f"document.getElementById('detail-title').innerText === {json.dumps(gpu_job['id'])}",
            "the job it waits for, opened from the link",
        )

        # The schedules panel shows only where the coordinator has schedules (not 404);
        # either way the page stays live.
        await page.wait_for(
            "document.getElementById('live').classList.contains('ok')", "live updates"
        )
        hidden = await page.evaluate("document.getElementById('schedules-panel').hidden")
        assert hidden is (status == 404)
        await page.screenshot(tmp_path / "dashboard-controls.png")
        assert page.errors == []
        assert page.csp_violations == []


async def test_the_schedules_panel_lists_schedules_and_an_operator_pauses_one(
    fleet: tuple[Coordinator, Process], tmp_path: Path
) -> None:
    chromium = chromium_or_skip()
    coordinator, _ = fleet
    status, _ = http_json(coordinator.api + "/schedules", token=coordinator.admin_token)
    if status == 404:
        pytest.skip("this coordinator has no schedules (GET /v1/schedules is 404)")
    coordinator.admin(
        "PUT",
        "/schedules/ticker",
        {"every_s": 1, "job": {"op": "sum", "payload": {"a": 1, "b": 2}}},
    )
    coordinator.admin(
        "PUT",
        "/schedules/weekly-report",
        {"cron": "0 9 * * 1", "timezone": "Europe/Paris", "job": {"op": "sum"}},
    )

    def ticked() -> str | None:
        (ticker,) = [
            s for s in coordinator.admin("GET", "/schedules")["schedules"] if s["name"] == "ticker"
        ]
        return ticker["last_job_id"]

    await asyncio.to_thread(wait_until, lambda: ticked() is not None, what="the ticker's first job")
    tokens = {
        role: coordinator.admin("POST", "/tokens", {"name": f"{role}-1", "role": role})["token"]
        for role in ("reader", "operator")
    }
    row = "#schedules tr[data-schedule='%s']"
    buttons = f"document.querySelectorAll({json.dumps('#schedules button[data-action]')}).length"
    async with open_browser(chromium, tmp_path / "chromium-profile") as page:
        # A reader sees the schedules and no button to change them.
        await page.open(
            signed_in_link(coordinator.url, tokens["reader"]), lands_on=coordinator.url + "/"
        )
        await page.wait_for(
            f"!!document.querySelector({json.dumps(row % 'weekly-report')})", "the schedules"
        )
        assert await page.evaluate("document.getElementById('schedules-panel').hidden") is False
        weekly = await page.text(row % "weekly-report")
        assert "0 9 * * 1" in weekly and "Europe/Paris" in weekly and "in " in weekly, weekly
        assert "every 1s" in await page.text(row % "ticker")
        assert await page.evaluate(buttons) == 0

        # An operator: the last job opens the job view; Pause, then Resume, reach the coordinator.
        await page.open(
            signed_in_link(coordinator.url, tokens["operator"]), lands_on=coordinator.url + "/"
        )
        await page.wait_for(f"{buttons} == 2", "the schedules' buttons")
        await page.click(f"{row % 'ticker'} a.job")
        await page.wait_for(
            "document.getElementById('detail-title').innerText.startsWith('job_')",
            "the ticker's last job in the job view",
        )
        await page.click("#detail-close")
        await page.click(f"{row % 'ticker'} button[data-action='pause']")

        def ticker_paused(paused: bool) -> bool:
            return any(
                s["name"] == "ticker" and s["paused"] is paused
                for s in coordinator.admin("GET", "/schedules")["schedules"]
            )

        await asyncio.to_thread(wait_until, lambda: ticker_paused(True), what="the pause")
        resume = f"{row % 'ticker'} button[data-action='resume']"
        await page.wait_for(f"!!document.querySelector({json.dumps(resume)})", "a Resume button")
        assert "paused" in await page.text(row % "ticker")
        await page.click(resume)
        await asyncio.to_thread(wait_until, lambda: ticker_paused(False), what="the resume")
        await page.screenshot(tmp_path / "dashboard-schedules.png")
        assert page.errors == []
        assert page.csp_violations == []


async def test_the_limits_panel_shows_use_against_each_limit(
    fleet: tuple[Coordinator, Process], tmp_path: Path
) -> None:
    chromium = chromium_or_skip()
    coordinator, _ = fleet
    await asyncio.to_thread(_bot_id, coordinator)
    coordinator.admin("PUT", "/limits/warehouse-db", {"max_running": 0})
    coordinator.admin("PUT", "/limits/partner-api", {"per_second": 50, "burst": 4})
    held = [
        coordinator.admin(
            "POST", "/jobs", {"op": "sum", "payload": {"a": 1, "b": 2}, "limits": ["warehouse-db"]}
        )["id"]
        for _ in range(3)
    ]
    ran = [
        coordinator.admin(
            "POST", "/jobs", {"op": "sum", "payload": {"a": 1, "b": 2}, "limits": ["partner-api"]}
        )["id"]
        for _ in range(4)
    ]

    def all_ran() -> bool:
        return all(
            coordinator.admin("GET", f"/jobs/{job_id}")["state"] == "succeeded" for job_id in ran
        )

    await asyncio.to_thread(wait_until, all_ran, what="the partner-api jobs to run")
    row = "#limits tr[data-limit='%s']"
    async with open_browser(chromium, tmp_path / "chromium-profile") as page:
        await page.open(
            signed_in_link(coordinator.url, coordinator.admin_token), lands_on=coordinator.url + "/"
        )
        db = json.dumps(row % "warehouse-db")
        await page.wait_for(
            f"!!document.querySelector({db})"
            f" && document.querySelector({db} + ' td.held').innerText === '3'",
            "the full limit holding back its 3 jobs",
        )
        assert "0 of 0" in await page.text(f"{row % 'warehouse-db'} td.running")
        assert "no cap" in await page.text(f"{row % 'warehouse-db'} td.rate")
        # Its 4 jobs started within the last 10 s: a measured rate against 50/s.
        rate = await page.text(f"{row % 'partner-api'} td.rate")
        assert rate.endswith("of 50/s") and not rate.startswith("0/s"), rate
        assert (
            await page.evaluate(
                f"document.querySelector({json.dumps(row % 'partner-api' + ' meter')}).max"
            )
            == 50
        )

        # A held job's view names the limit and shows its limits.
        await _open_job(page, held[0])
        await page.wait_for(
            "(document.getElementById('detail-waiting') || {}).innerText"
            " === 'held by limit warehouse-db (0 of 0 running)'",
            "the job view naming the limit that holds the job",
        )
        assert "warehouse-db" in await page.text("#detail-fields .chips")
        await page.screenshot(tmp_path / "dashboard-limits.png")
        assert page.errors == []
        assert page.csp_violations == []
