"""botfleet.processes: ports, waits, the child environment, and children always stopped."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from pathlib import Path

import pytest

from botfleet.processes import (
    ChildExited,
    ChildProcess,
    child_env,
    free_port,
    port_open,
    python_module,
    require_alive,
    sigterm_as_interrupt,
    stop_all,
    wait_until,
    wait_until_async,
)

EXITS_ON_SIGTERM = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
    "print('ready', flush=True)\n"
    "time.sleep(600)\n"
)
IGNORES_SIGTERM = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(600)\n"
)
# Leaves a helper behind in its session when it exits, as a forking server might.
FORKS_A_HELPER = (
    "import signal, subprocess, sys, time\n"
    "helper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
    "print('helper', helper.pid, flush=True)\n"
    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
    "print('ready', flush=True)\n"
    "time.sleep(600)\n"
)


def _child(tmp_path: Path, name: str, script: str) -> ChildProcess:
    args = [sys.executable, "-c", script]
    process = ChildProcess(name, args, tmp_path / "logs" / f"{name}.log", dict(os.environ))
    return process.start()


def _ready(process: ChildProcess) -> None:
    wait_until(lambda: "ready" in process.log(), what=f"{process.name} ready")


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1]
    except FileNotFoundError:
        return True
    return state == "Z"


def test_port_open_sees_a_listener_on_a_free_port() -> None:
    port = free_port()
    assert not port_open(port)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        assert port_open(port)


def test_wait_until_returns_once_the_condition_holds() -> None:
    calls: list[int] = []

    def fourth_call() -> bool:
        calls.append(len(calls) + 1)
        return len(calls) == 4

    wait_until(fourth_call, what="the fourth call", interval_s=0)

    assert calls == [1, 2, 3, 4]  # polled until it held, and not once more


def test_wait_until_names_what_it_waited_for() -> None:
    with pytest.raises(TimeoutError, match=r"timed out after 0 s waiting for nothing at all"):
        wait_until(lambda: False, 0.05, "nothing at all")


def test_wait_until_raises_the_callers_error() -> None:
    class Failed(Exception):
        pass

    with pytest.raises(Failed, match="the moon"):
        wait_until(lambda: False, 0.05, "the moon", error=Failed)


async def test_wait_until_async() -> None:
    seen: list[int] = []

    async def third() -> bool:
        seen.append(1)
        return len(seen) >= 3

    await wait_until_async(third, what="the third call")
    with pytest.raises(TimeoutError, match="waiting for never"):
        await wait_until_async(_never, 0.05, "never")


async def _never() -> bool:
    return False


def test_child_env_drops_botfleets_own_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_NAME", "from-the-parent")
    monkeypatch.setenv("BOTFLEET_ADMIN_TOKEN", "secret")
    monkeypatch.setenv("SERVER_BASE", "http://elsewhere")
    monkeypatch.setenv("UNRELATED", "kept")
    monkeypatch.setenv("PYTHONPATH", "/already")
    env = child_env({"BOT_NAME": "mine"})
    assert env["BOT_NAME"] == "mine"
    assert "BOTFLEET_ADMIN_TOKEN" not in env
    assert "SERVER_BASE" not in env
    assert env["UNRELATED"] == "kept"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PYTHONPATH"] == "/already"
    repo = Path("/repo")
    assert child_env(python_path=[repo])["PYTHONPATH"] == os.pathsep.join(["/repo", "/already"])


def test_python_module_uses_this_interpreter() -> None:
    assert python_module("bot", "--help") == [sys.executable, "-m", "bot", "--help"]


def test_stop_is_polite_first(tmp_path: Path) -> None:
    process = _child(tmp_path, "polite", EXITS_ON_SIGTERM)
    _ready(process)
    assert process.alive()
    assert process.stop(grace_s=30) == 0
    assert not process.alive()
    assert process.log_tail() == "ready"


def test_stop_kills_what_ignores_sigterm(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    polite = _child(tmp_path, "polite", EXITS_ON_SIGTERM)
    stubborn = _child(tmp_path, "stubborn", IGNORES_SIGTERM)
    for process in (polite, stubborn):
        _ready(process)
    with caplog.at_level(logging.WARNING, logger="botfleet.processes"):
        killed = stop_all([polite, stubborn], grace_s=0.5)
    assert killed == [stubborn]
    assert polite.returncode == 0
    assert stubborn.returncode == -signal.SIGKILL
    assert "stubborn did not stop" in caplog.text


def test_stop_sweeps_helpers_left_in_the_session(tmp_path: Path) -> None:
    parent = _child(tmp_path, "forker", FORKS_A_HELPER)
    _ready(parent)
    helper = int(parent.log().split("helper ", 1)[1].split()[0])
    assert not _gone(helper)
    assert parent.stop(grace_s=30) == 0
    wait_until(lambda: _gone(helper), what=f"helper {helper} to end")


def test_kill_is_a_crash(tmp_path: Path) -> None:
    process = _child(tmp_path, "victim", EXITS_ON_SIGTERM)
    _ready(process)
    process.kill()
    assert process.returncode == -signal.SIGKILL
    assert process.stop() == -signal.SIGKILL  # stopping the dead is harmless


def test_a_process_never_started(tmp_path: Path) -> None:
    process = ChildProcess("idle", ["true"], tmp_path / "idle.log", {})
    assert not process.alive()
    assert process.stop() is None
    assert process.log() == ""
    with pytest.raises(RuntimeError, match="idle was never started"):
        _ = process.pid


def test_require_alive_quotes_the_log(tmp_path: Path) -> None:
    script = "import sys; print('no database', flush=True); sys.exit(3)"
    process = _child(tmp_path, "fragile", script)
    assert process.wait() == 3
    with pytest.raises(ChildExited, match=r"fragile exited early; its log ends:\nno database"):
        require_alive(process)
    with pytest.raises(ValueError, match="fragile exited early"):
        require_alive(process, ValueError)


def test_sigterm_becomes_keyboard_interrupt() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="signal 15"), sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        wait_until(lambda: False, 30, "the signal")  # it arrives between two checks
    assert signal.getsignal(signal.SIGTERM) == before
