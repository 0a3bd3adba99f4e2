"""The demo's process group: children log to files and are always stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from botfleet.cli.processes import ProcessGroup
from tests.support.processes import wait_until

IGNORES_SIGTERM = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(600)\n"
)
EXITS_ON_SIGTERM = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
    "print('ready', flush=True)\n"
    "time.sleep(600)\n"
)


def _wait_for_line(path: Path, text: str) -> None:
    wait_until(lambda: path.exists() and text in path.read_text(), what=f"{text!r} in {path}")


async def test_stop_asks_then_kills(tmp_path: Path) -> None:
    group = ProcessGroup(tmp_path / "logs")
    polite = group.start("polite", [sys.executable, "-c", EXITS_ON_SIGTERM], dict(os.environ))
    stubborn = group.start("stubborn", [sys.executable, "-c", IGNORES_SIGTERM], dict(os.environ))
    for child in (polite, stubborn):
        _wait_for_line(child.log_path, "ready")
    assert polite.alive and stubborn.alive
    killed = await group.stop([polite, stubborn], grace_s=1.0)
    assert killed == [stubborn]
    assert polite.process.returncode == 0
    assert stubborn.process.returncode == -signal.SIGKILL
    assert "ready" in polite.log_tail()


def test_kill_all_needs_no_event_loop(tmp_path: Path) -> None:
    group = ProcessGroup(tmp_path / "logs")
    child = group.start("sleeper", [sys.executable, "-c", IGNORES_SIGTERM], dict(os.environ))
    _wait_for_line(child.log_path, "ready")
    group.kill_all()
    assert not child.alive
    group.kill_all()  # again: harmless


def test_children_die_with_the_parent(tmp_path: Path) -> None:
    """A demo killed with SIGKILL still leaves no child behind (Linux PR_SET_PDEATHSIG)."""
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from botfleet.cli.processes import ProcessGroup\n"
        "group = ProcessGroup(Path(sys.argv[1]))\n"
        "child = group.start('orphan', [sys.executable, '-c', 'import time; time.sleep(600)'],"
        " dict(os.environ))\n"
        "print(child.process.pid, flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    parent = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "logs")], capture_output=True, text=True
    )
    assert parent.returncode == -signal.SIGKILL
    orphan = int(parent.stdout.strip())

    def gone() -> bool:
        try:
            state = Path(f"/proc/{orphan}/stat").read_text().split(") ", 1)[1][:1]
        except FileNotFoundError:
            return True
        return state == "Z"

    wait_until(gone, what=f"orphan {orphan} to end")
