"""`botfleet demo` (what `make demo` runs): real processes, a summary, nothing left behind."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import wait_until

pytestmark = pytest.mark.e2e

DEMO_DEADLINE_S = 180


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOTFLEET_", "BOT_"))}
    env.pop("SERVER_BASE", None)
    return env


def processes_mentioning(marker: str) -> list[str]:
    """Live processes whose command line or environment names `marker` (a demo's folder)."""
    found = []
    needle = marker.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().split(") ", 1)[1][:1]
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if state != "Z" and (needle in cmdline or needle in environ):
            command = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry.name}: {command}")
    return found


def _sigint_delivered() -> None:
    """In the child before exec: a CI that runs us in the background (no job control)
    has SIGINT ignored, and an ignored signal stays ignored across exec, where Python
    would then never see the Ctrl-C this test sends."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _demo(state_dir: Path, jobs: int) -> list[str]:
    return [
        sys.executable, "-m", "botfleet", "demo",
        "--bots", "2", "--jobs", str(jobs), "--state-dir", str(state_dir),
    ]  # fmt: skip


def test_demo_runs_jobs_and_summarizes(tmp_path: Path) -> None:
    state_dir = tmp_path / "demo"
    done = subprocess.run(
        _demo(state_dir, 300),
        capture_output=True,
        text=True,
        env=_env(),
        timeout=DEMO_DEADLINE_S,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert "Traceback" not in done.stderr
    out = done.stdout
    assert re.search(r"submitted\s+300\b", out), out
    assert re.search(r"succeeded\s+294\b", out), out
    assert re.search(r"failed\s+6\b", out), out
    assert "jobs/s" in out
    for name in ("demo-bot-1", "demo-bot-2"):
        assert name in out
    assert "Example failures" in out
    assert "botfleet jobs --state failed" in out
    assert str(state_dir / "logs") in out
    assert (state_dir / "logs" / "coordinator.log").exists()
    assert processes_mentioning(str(state_dir)) == []
    # The admin token is named by its file (0600), never shown (docs/security.md).
    token_file = state_dir / "coordinator" / "admin_token"
    token = token_file.read_text(encoding="utf-8").strip()
    assert token and token not in done.stdout + done.stderr
    assert str(token_file) in done.stderr
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("signum", "code", "said"),
    [(signal.SIGINT, 130, "demo interrupted"), (signal.SIGTERM, 143, "demo stopped")],
)
def test_an_interrupted_demo_leaves_no_process(
    tmp_path: Path, signum: int, code: int, said: str
) -> None:
    state_dir = tmp_path / "demo"
    err_path = tmp_path / "stderr.txt"
    with err_path.open("wb") as err:
        demo = subprocess.Popen(
            _demo(state_dir, 100_000),
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=_env(),
            preexec_fn=_sigint_delivered,
        )
    try:
        wait_until(
            lambda: "bots online" in err_path.read_text() or demo.poll() is not None,
            what="the demo's bots online",
        )
        assert demo.poll() is None, err_path.read_text()
        assert len(processes_mentioning(str(state_dir))) >= 3  # coordinator and two bots
        demo.send_signal(signum)
        assert demo.wait(60) == code
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    text = err_path.read_text()
    assert f"{said}; everything it started is stopped" in text
    assert "Traceback" not in text
    assert processes_mentioning(str(state_dir)) == []
