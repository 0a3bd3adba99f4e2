"""Signing the dashboard in: the link the server prints to its terminal, `botfleet
dashboard` opening it in a browser, and the page taking the token out of the address bar.

Real processes: a coordinator whose standard output is a pseudo-terminal, the command
line with BROWSER set to a script that records the link, and a headless Chromium.
"""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from botfleet.cli.dashboard import signed_in_link
from botfleet.processes import DEADLINE_S, child_env, free_port, port_open, python_module
from tests.e2e.chromium import Page, chromium_or_skip, open_browser
from tests.support.processes import start_bot, start_coordinator, wait_until

pytestmark = pytest.mark.e2e

ADMIN_TOKEN = "signin-admin/token+with=odd&chars"
LINK_TOKEN = "signin-admin%2Ftoken%2Bwith%3Dodd%26chars"


def _read_until(fd: int, text: str) -> str:
    """What the terminal shows up to and including the line that contains `text`."""
    seen = b""
    deadline = time.monotonic() + DEADLINE_S
    while text.encode() not in seen or not seen.split(text.encode(), 1)[1].count(b"\n"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {text!r} on the terminal; it showed {seen!r}")
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            seen += os.read(fd, 4096)
    return seen.decode()


def test_the_server_prints_the_signed_in_link_to_its_terminal_and_never_logs_it(
    tmp_path: Path,
) -> None:
    port = free_port()
    terminal, its_end = pty.openpty()
    stderr_path = tmp_path / "coordinator.stderr"
    args = python_module(
        "coordinator", "--port", str(port), "--state-dir", str(tmp_path / "state"),
        "--admin-token", ADMIN_TOKEN, "--log-level", "debug",
    )  # fmt: skip
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=its_end, stderr=stderr, env=child_env()
        )
    os.close(its_end)
    try:
        shown = _read_until(terminal, "dashboard")
        wait_until(lambda: port_open(port), what="the coordinator listening")
    finally:
        process.terminate()
        process.wait(timeout=DEADLINE_S)
        os.close(terminal)
    assert f"dashboard http://127.0.0.1:{port}/#token={LINK_TOKEN}" in shown
    logged = stderr_path.read_text()
    assert "event loop" in logged  # the debug log was on
    assert ADMIN_TOKEN not in logged and LINK_TOKEN not in logged


def test_botfleet_dashboard_opens_the_browser_signed_in_and_the_page_hides_the_token(
    tmp_path: Path,
) -> None:
    chromium = chromium_or_skip()
    coordinator = start_coordinator(tmp_path, admin_token=ADMIN_TOKEN)
    try:
        # The server's standard output is a file here: the plain link, no token.
        wait_until(lambda: "botfleet dashboard" in coordinator.process.log(), what="the link")
        assert f"dashboard {coordinator.url}/ (`botfleet dashboard`" in coordinator.process.log()
        assert ADMIN_TOKEN not in coordinator.process.log()

        recorded = tmp_path / "opened-url"
        browser = tmp_path / "record-browser"
        browser.write_text(f'#!/bin/sh\nprintf "%s" "$1" > {recorded}\n')
        browser.chmod(0o700)
        env = child_env({"BROWSER": str(browser)})
        done = subprocess.run(
            [sys.executable, "-m", "botfleet", "dashboard", "--server", coordinator.url,
             "--admin-token", ADMIN_TOKEN],
            capture_output=True, text=True, env=env, timeout=DEADLINE_S, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        link = recorded.read_text()
        assert link == f"{coordinator.url}/#token={LINK_TOKEN}"
        assert done.stdout == f"opened {coordinator.url}/ in the browser, signed in\n"
        assert ADMIN_TOKEN not in done.stdout + done.stderr

        asyncio.run(_open_signed_in(chromium, tmp_path, link, coordinator.url + "/"))
    finally:
        coordinator.process.stop()


async def _open_signed_in(chromium: str, tmp_path: Path, link: str, clean: str) -> None:
    async with open_browser(chromium, tmp_path / "chromium-profile") as page:
        await page.open(link, lands_on=clean)
        await page.wait_for(
            "document.getElementById('live').classList.contains('ok')", "live updates"
        )
        assert await page.evaluate("document.getElementById('token-dialog').open") is False
        assert await page.evaluate("sessionStorage.getItem('botfleet.token')") == ADMIN_TOKEN
        assert await page.evaluate("location.hash") == ""
        assert await page.text("#signed-in") == "admin"
        # A reload keeps the session (sessionStorage) with nothing in the address bar.
        await page.evaluate("window.beforeReload = true")
        await page.send("Page.reload")
        await page.wait_for(
            "window.beforeReload === undefined && document.readyState === 'complete' && "
            "document.getElementById('live').classList.contains('ok')",
            "live updates after a reload",
        )
        assert await page.evaluate("location.href") == clean
        assert page.errors == [] and page.csp_violations == []


async def test_a_reader_gets_no_action_buttons_and_an_operator_does(tmp_path: Path) -> None:
    chromium = chromium_or_skip()
    coordinator = start_coordinator(tmp_path, extra_args=["--heartbeat-interval", "1"])
    bot = start_bot(tmp_path, [coordinator.api], "signin-bot")
    try:
        await asyncio.to_thread(
            wait_until,
            lambda: (
                [b["name"] for b in coordinator.admin("GET", "/bots")["bots"]] == ["signin-bot"]
            ),
            what="the bot registered",
        )
        (bot_id,) = [b["id"] for b in coordinator.admin("GET", "/bots")["bots"]]
        parked = coordinator.admin(
            "POST", "/jobs", {"op": "sum", "payload": {}, "delay_ms": 600_000}
        )
        tokens = {
            role: coordinator.admin("POST", "/tokens", {"name": f"{role}-1", "role": role})["token"]
            for role in ("reader", "operator", "producer")
        }
        clean = coordinator.url + "/"
        bot_buttons = f"#bots tr[data-bot='{bot_id}'] button[data-action]"
        count_buttons = f"document.querySelectorAll({json.dumps(bot_buttons)}).length"
        async with open_browser(chromium, tmp_path / "chromium-profile") as page:
            # A reader: the fleet, and no button to change it.
            await page.open(signed_in_link(coordinator.url, tokens["reader"]), lands_on=clean)
            await page.wait_for(
                f"!!document.querySelector(\"#bots tr[data-bot='{bot_id}']\")", "the bot's row"
            )
            assert await page.text("#signed-in") == "reader-1 · reader"
            assert await page.evaluate(count_buttons) == 0
            await _open_job(page, parked["id"])
            assert (
                await page.evaluate("document.getElementById('detail-cancel').offsetParent") is None
            )
            await page.click("#detail-close")  # the drawer would cover the bots' buttons

            # A producer cannot read the fleet: the prompt says so.
            await page.open(signed_in_link(coordinator.url, tokens["producer"]), lands_on=clean)
            await page.wait_for("!document.getElementById('token-error').hidden", "the refusal")
            assert "producer token cannot read the fleet" in await page.text("#token-error")

            # An operator: the buttons, and they work.
            await page.open(signed_in_link(coordinator.url, tokens["operator"]), lands_on=clean)
            await page.wait_for(f"{count_buttons} > 0", "the bot's buttons")
            assert await page.text("#signed-in") == "operator-1 · operator"
            await page.click(f"#bots tr[data-bot='{bot_id}'] button[data-action='pause']")
            await asyncio.to_thread(
                wait_until,
                lambda: coordinator.admin("GET", f"/bots/{bot_id}")["assignment"]["paused"],
                what="the pause to reach the coordinator",
            )
            await _open_job(page, parked["id"])
            await page.click("#detail-cancel")
            await asyncio.to_thread(
                wait_until,
                lambda: coordinator.admin("GET", f"/jobs/{parked['id']}")["state"] == "cancelled",
                what="the cancel to reach the coordinator",
            )
            assert page.errors == [] and page.csp_violations == []
    finally:
        bot.stop()
        coordinator.process.stop()


async def _open_job(page: Page, job_id: str) -> None:
    await page.evaluate("document.getElementById('find-job-id').value = ''")
    await page.evaluate("document.getElementById('find-job-id').focus()")
    await page.type_text(job_id)
    await page.press_enter()
    await page.wait_for(
        "!document.getElementById('job-detail').hidden && "
        "document.getElementById('detail-fields').innerText.includes('queued')",
        "the job's detail",
    )
    # The drawer fills in as the job's log and attempts arrive: click once it holds still.
    await page.wait_for("!document.getElementById('job-log').hidden", "the job's log pane")
    await page.wait_for(
        """(() => {
            const top = document.getElementById('detail-cancel').getBoundingClientRect().top;
            const still = window.lastCancelTop === top;
            window.lastCancelTop = top;
            return still;
        })()""",
        "the drawer's buttons to hold still",
    )


async def test_an_operator_revokes_allows_and_forgets_a_bot_from_the_dashboard(
    tmp_path: Path,
) -> None:
    chromium = chromium_or_skip()
    coordinator = start_coordinator(tmp_path, extra_args=["--heartbeat-interval", "1"])
    bot = start_bot(tmp_path, [coordinator.api], "revoked-bot")
    try:
        await asyncio.to_thread(
            wait_until, lambda: len(coordinator.admin("GET", "/bots")["bots"]) == 1, what="a bot"
        )
        (bot_id,) = [b["id"] for b in coordinator.admin("GET", "/bots")["bots"]]
        operator = coordinator.admin("POST", "/tokens", {"name": "on-call", "role": "operator"})
        row = f"#bots tr[data-bot='{bot_id}']"

        def button(action: str) -> str:
            return f"{row} button[data-action='{action}']"

        def present(action: str) -> str:
            return f"!!document.querySelector({json.dumps(button(action))})"

        async with open_browser(chromium, tmp_path / "chromium-profile") as page:
            await page.open(
                signed_in_link(coordinator.url, operator["token"]),
                lands_on=coordinator.url + "/",
            )
            await page.wait_for(present("revoke"), "the Revoke button")
            assert not await page.evaluate(present("forget"))  # online: not yet

            await page.click(button("revoke"))
            await asyncio.to_thread(
                wait_until,
                lambda: coordinator.admin("GET", f"/bots/{bot_id}")["revoked_at"] is not None,
                what="the revocation to reach the coordinator",
            )
            assert await asyncio.to_thread(bot.wait) == 5  # refused for good: it halts
            await page.wait_for(present("allow"), "the Allow button of the revoked bot")
            assert await page.text(f"{row} .badge") == "revoked"
            actions = f"[...document.querySelectorAll({json.dumps(row + ' button')})]"
            assert await page.evaluate(f"{actions}.map((b) => b.dataset.action)") == ["allow"]

            await page.click(button("allow"))
            await asyncio.to_thread(
                wait_until,
                lambda: coordinator.admin("GET", f"/bots/{bot_id}")["revoked_at"] is None,
                what="the allow to reach the coordinator",
            )
            await page.wait_for(present("forget"), "the Forget button of the offline bot")
            await page.click(button("forget"))
            await asyncio.to_thread(
                wait_until,
                lambda: coordinator.admin("GET", "/bots")["bots"] == [],
                what="the bot forgotten",
            )
            await page.wait_for(f"!document.querySelector({json.dumps(row)})", "the row gone")
            assert page.dialogs == [
                "Revoke bot revoked-bot? Its token stops working at once, its jobs go back to "
                "the queue, and it cannot register again until allowed.",
                "Forget bot revoked-bot? Its jobs keep its id.",
            ]
            assert page.errors == [] and page.csp_violations == []
    finally:
        bot.stop()
        coordinator.process.stop()
