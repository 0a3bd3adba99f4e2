"""Signing the dashboard in: the link the server prints to its terminal, `botfleet
dashboard` opening it in a browser, and the page taking the token out of the address bar.

Real processes: a coordinator whose standard output is a pseudo-terminal, the command
line with BROWSER set to a script that records the link, and a headless Chromium.
"""

from __future__ import annotations

import asyncio
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from botfleet.processes import DEADLINE_S, child_env, free_port, port_open, python_module
from tests.e2e.chromium import chromium_or_skip, open_browser
from tests.support.processes import start_coordinator, wait_until

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
        assert await page.text("#signed-in") == "admin"  # an older server: no whoami
        # A reload keeps the session (sessionStorage) with nothing in the address bar.
        await page.evaluate("window.beforeReload = true; location.reload()")
        await page.wait_for(
            "window.beforeReload === undefined && document.readyState === 'complete' && "
            "document.getElementById('live').classList.contains('ok')",
            "live updates after a reload",
        )
        assert await page.evaluate("location.href") == clean
        assert page.errors == [] and page.csp_violations == []
