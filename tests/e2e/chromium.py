"""A headless Chromium driven over the Chrome DevTools Protocol (a websocket, aiohttp).

Just what the dashboard test needs: open a page, type, click, read the DOM,
take a screenshot, and collect the page's uncaught JavaScript errors and the
browser's console messages (where Content-Security-Policy violations are reported).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

EXECUTABLES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)
DEADLINE_S = 30.0


def find_chromium() -> str | None:
    for name in EXECUTABLES:
        path = shutil.which(name)
        if path:
            return path
    return None


def chromium_or_skip() -> str:
    """Chromium's path; where it is missing the test skips and says so, unless
    BOTFLEET_REQUIRE_BROWSER=1 (as `.ci/run` sets it), where it fails."""
    path = find_chromium()
    if path is None:
        reason = "chromium is not installed (apt-get install -y chromium; `make browser`)"
        if os.environ.get("BOTFLEET_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + ", and BOTFLEET_REQUIRE_BROWSER=1")
        pytest.skip(reason)
    return path


class BrowserError(Exception):
    """The browser or the page did not do what was asked."""


class Page:
    """One tab: commands are awaited by id; dialogs are accepted; JS errors are kept."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read(), name="cdp-reader")
        self._side_tasks: set[asyncio.Task[Any]] = set()
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.console: list[str] = []  # "level source: text" of every browser log entry

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = future
        await self._ws.send_str(json.dumps({"id": call_id, "method": method, "params": params}))
        async with asyncio.timeout(DEADLINE_S):
            message = await future
        if "error" in message:
            raise BrowserError(f"{method}: {message['error']}")
        result: dict[str, Any] = message.get("result", {})
        return result

    async def _read(self) -> None:
        async for message in self._ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            if "id" in data:
                future = self._waiting.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            else:
                self._on_event(data.get("method", ""), data.get("params", {}))
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(BrowserError("the browser closed the connection"))

    def _on_event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text", "")
            self.errors.append(text)
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            self.console.append(f"{entry.get('level')} {entry.get('source')}: {entry.get('text')}")
        elif method == "Page.javascriptDialogOpening":
            # window.confirm() before cancel/drain: the person clicks OK.
            self.dialogs.append(params.get("message", ""))
            task = asyncio.create_task(self.send("Page.handleJavaScriptDialog", accept=True))
            self._side_tasks.add(task)
            task.add_done_callback(self._side_tasks.discard)

    @property
    def csp_violations(self) -> list[str]:
        return [line for line in self.console if "Content Security Policy" in line]

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        for task in list(self._side_tasks):
            task.cancel()
        await self._ws.close()

    # ------------------------------------------------------------ what a test does

    async def evaluate(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    async def wait_for(self, expression: str, what: str, deadline_s: float = DEADLINE_S) -> Any:
        deadline = time.monotonic() + deadline_s
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {deadline_s:.0f}s waiting for {what}")
            await asyncio.sleep(0.05)

    async def wait_for_console(self, text: str, what: str, deadline_s: float = DEADLINE_S) -> str:
        """The first console message containing `text`, once the browser has logged it."""
        deadline = time.monotonic() + deadline_s
        while True:
            for line in self.console:
                if text in line:
                    return line
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {deadline_s:.0f}s waiting for {what}")
            await asyncio.sleep(0.05)

    async def open(self, url: str, lands_on: str | None = None) -> None:
        """Navigate to `url` and wait until the page has loaded at `lands_on` (default:
        `url`; a page may rewrite its own address, as the sign-in link does)."""
        answer = await self.send("Page.navigate", url=url)
        if answer.get("errorText"):
            raise BrowserError(f"cannot open {url}: {answer['errorText']}")
        landed = url if lands_on is None else lands_on
        # The old document may still answer "complete" until the new one commits.
        await self.wait_for(
            f"location.href === {json.dumps(landed)} && document.readyState === 'complete'",
            f"{landed} to load",
        )

    async def type_text(self, text: str) -> None:
        await self.send("Input.insertText", text=text)

    async def press_enter(self) -> None:
        for kind in ("keyDown", "keyUp"):
            await self.send(
                "Input.dispatchKeyEvent",
                type=kind,
                key="Enter",
                code="Enter",
                windowsVirtualKeyCode=13,
                text="\r" if kind == "keyDown" else "",
            )

    async def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element (so it must be visible)."""
        box = await self.evaluate(
            f"""(() => {{
                const node = document.querySelector({json.dumps(selector)});
                if (!node) return null;
                node.scrollIntoView({{block: "center"}});
                const r = node.getBoundingClientRect();
                return {{x: r.left + r.width / 2, y: r.top + r.height / 2, w: r.width}};
            }})()"""
        )
        if not box or not box["w"]:
            raise BrowserError(f"nothing visible to click at {selector!r}")
        for kind in ("mousePressed", "mouseReleased"):
            await self.send(
                "Input.dispatchMouseEvent",
                type=kind,
                x=box["x"],
                y=box["y"],
                button="left",
                clickCount=1,
            )

    async def text(self, selector: str) -> str:
        value = await self.evaluate(
            f"(document.querySelector({json.dumps(selector)}) || {{}}).innerText || ''"
        )
        return str(value)

    async def screenshot(self, path: Path) -> bytes:
        shot = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        data = base64.b64decode(shot["data"])
        await asyncio.to_thread(path.write_bytes, data)
        return data


@contextlib.asynccontextmanager
async def open_browser(
    executable: str, profile_dir: Path, width: int = 1440, height: int = 1000
) -> AsyncIterator[Page]:
    """Start Chromium with a fresh profile; yield its first tab; stop every process after."""
    log_path = _prepare_profile(profile_dir)
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            executable,
            *FLAGS,
            f"--user-data-dir={profile_dir}",
            f"--window-size={width},{height}",
            "about:blank",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    try:
        async with aiohttp.ClientSession() as session:
            ws_url = await _page_websocket(session, profile_dir, process, log_path)
            async with session.ws_connect(ws_url, max_msg_size=0) as ws:
                page = Page(ws)
                try:
                    await page.send("Page.enable")
                    await page.send("Runtime.enable")
                    await page.send("Log.enable")
                    await page.send(
                        "Emulation.setDeviceMetricsOverride",
                        width=width,
                        height=height,
                        deviceScaleFactor=1,
                        mobile=False,
                    )
                    yield page
                finally:
                    await page.close()
    finally:
        await _stop(process)


async def _page_websocket(
    session: aiohttp.ClientSession,
    profile_dir: Path,
    process: asyncio.subprocess.Process,
    log_path: Path,
) -> str:
    """Chromium writes its debugging port into the profile; ask it for the tab's websocket."""
    deadline = time.monotonic() + DEADLINE_S
    while (port := _debugging_port(profile_dir)) is None:
        if process.returncode is not None:
            raise BrowserError(f"chromium exited at start:\n{_tail(log_path)}")
        if time.monotonic() > deadline:
            raise BrowserError(f"chromium did not open its debugging port; see {log_path}")
        await asyncio.sleep(0.05)
    while True:
        async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
            targets = await response.json()
        pages = [target for target in targets if target.get("type") == "page"]
        if pages:
            url: str = pages[0]["webSocketDebuggerUrl"]
            return url
        if time.monotonic() > deadline:
            raise BrowserError("chromium has no page to drive")
        await asyncio.sleep(0.05)


def _prepare_profile(profile_dir: Path) -> Path:
    profile_dir.mkdir(parents=True, exist_ok=True)
    (profile_dir / "DevToolsActivePort").unlink(missing_ok=True)  # a stale one from a reuse
    return profile_dir / "chromium.log"


def _debugging_port(profile_dir: Path) -> str | None:
    try:
        words = (profile_dir / "DevToolsActivePort").read_text().split()
    except FileNotFoundError:
        return None
    return words[0] if words else None


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:]


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM the whole process group (renderers, zygote), then SIGKILL stragglers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        async with asyncio.timeout(10):
            await process.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # children that outlived the main process
