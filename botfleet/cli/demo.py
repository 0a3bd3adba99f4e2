"""`botfleet demo`: a coordinator and a few bots on this machine, a thousand jobs, a summary.

Everything runs as real processes (`python -m coordinator`, `python -m bot`) in a
fresh state folder on a free port, and everything started is stopped again,
also on Ctrl-C or when a step fails.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from botfleet.cli.demo_report import DemoOutcome, WhereNext, demo_jobs, summary, tally_by_bot
from botfleet.cli.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, CliError, from_client
from botfleet.cli.processes import Child, ProcessGroup
from botfleet.cli.progress import StateProgress
from botfleet.cli.settings import ADMIN_TOKEN_FILE, ClientSettings, connect
from botfleet.cli.waiting import first_cli_error
from botfleet.client import AsyncClient, BotfleetError
from botfleet.private_files import private_dir, private_file
from botfleet.protocol import messages as m

_START_DEADLINE_S = 30.0
_RUN_DEADLINE_S = 300.0
_POLL_S = 0.25
_BOT_GRACE_S = 15.0
_SERVER_GRACE_S = 10.0
_EXAMPLE_FAILURES = 5
_PAGE = 500
_HEARTBEAT_S = 5
_BOT_CONCURRENCY = 16
_BOT_BATCH = 16


@dataclass(frozen=True, slots=True)
class DemoSettings:
    bots: int = 3
    jobs: int = 1000
    keep_running: bool = False
    state_dir: str | None = None


@dataclass(frozen=True, slots=True)
class _Fleet:
    server: str
    admin_token: str
    enroll_token: str
    state_dir: Path
    logs_dir: Path

    @property
    def coordinator_dir(self) -> Path:
        return self.state_dir / "coordinator"

    @property
    def admin_token_file(self) -> Path:
        return self.coordinator_dir / ADMIN_TOKEN_FILE


def run_demo(settings: DemoSettings, consoles: tuple[Console, Console]) -> int:
    out, err = consoles
    state_dir = Path(settings.state_dir or tempfile.mkdtemp(prefix="botfleet-demo-")).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    fleet = _Fleet(
        server=f"http://127.0.0.1:{_free_port()}",
        admin_token=secrets.token_urlsafe(24),
        enroll_token=secrets.token_urlsafe(24),
        state_dir=state_dir,
        logs_dir=state_dir / "logs",
    )
    group = ProcessGroup(fleet.logs_dir)
    try:
        return asyncio.run(_main(settings, fleet, group, out, err))
    except KeyboardInterrupt:
        err.print("demo interrupted; everything it started is stopped")
        return EXIT_INTERRUPTED
    except asyncio.CancelledError:  # SIGTERM
        err.print("demo stopped; everything it started is stopped")
        return EXIT_TERMINATED
    finally:
        group.kill_all()


async def _main(
    settings: DemoSettings, fleet: _Fleet, group: ProcessGroup, out: Console, err: Console
) -> int:
    # Ctrl-C already cancels this task (asyncio.run); SIGTERM should stop as cleanly.
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    client_settings = ClientSettings(server=fleet.server, admin_token=fleet.admin_token)
    async with connect(client_settings) as client:
        try:
            return await _run(settings, fleet, group, client, out, err)
        except BotfleetError as exc:
            raise from_client(exc) from None
        finally:
            await _stop(group, err)


async def _run(
    settings: DemoSettings,
    fleet: _Fleet,
    group: ProcessGroup,
    client: AsyncClient,
    out: Console,
    err: Console,
) -> int:
    err.print(f"[bold]botfleet demo[/]: {settings.bots} bots, {settings.jobs} jobs")
    err.print(f"state and logs: {fleet.state_dir}")
    with err.status("starting the coordinator"):
        coordinator = _start_coordinator(group, fleet)
        await _wait_until_ready(client, coordinator)
    # Never the token itself: a terminal's output ends up in scrollback, CI logs and
    # screenshots. The file is the coordinator's own, where the operator commands look.
    err.print(
        f"coordinator ready: dashboard at {fleet.server}/ (admin token in "
        f"{fleet.admin_token_file}; `botfleet dashboard --server {fleet.server} "
        f"--state-dir {fleet.coordinator_dir}` opens it signed in)"
    )
    with err.status(f"starting {settings.bots} bots"):
        bots = [_start_bot(group, fleet, index + 1) for index in range(settings.bots)]
        await _wait_for_bots(client, bots)
    err.print(f"{settings.bots} bots online")

    jobs = demo_jobs(settings.jobs)
    started = time.monotonic()
    with StateProgress(err, total=len(jobs), description="jobs") as bar:
        # The bots start on the first thousand while the rest are still being submitted.
        try:
            async with asyncio.TaskGroup() as both:
                both.create_task(_submit_all(client, jobs))
                waiting = both.create_task(_wait_for_all(client, len(jobs), bar, bots))
        except ExceptionGroup as failures:
            raise first_cli_error(failures) from None
        counts = waiting.result()
    elapsed = time.monotonic() - started

    outcome = await _outcome(client, len(jobs), counts, elapsed)
    where = WhereNext(
        server=fleet.server,
        coordinator_dir=str(fleet.coordinator_dir),
        logs_dir=str(fleet.logs_dir),
        kept_running=settings.keep_running,
    )
    out.print(summary(outcome, where))
    if settings.keep_running:
        err.print("[bold]the coordinator and bots keep running; press Ctrl-C to stop them[/]")
        await asyncio.Event().wait()
    return EXIT_OK


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BOTFLEET_", "BOT_", "SERVER_BASE"))
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def _keep_tokens(fleet: _Fleet) -> None:
    """The demo's tokens in the coordinator's state folder (0700, the files 0600), where
    the coordinator reads them at start and the operator commands find the admin token."""
    private_dir(fleet.coordinator_dir)
    for name, token in (
        (ADMIN_TOKEN_FILE, fleet.admin_token),
        ("enroll_token", fleet.enroll_token),
    ):
        path = fleet.coordinator_dir / name
        private_file(path)
        path.write_text(token + "\n", encoding="utf-8")


def _start_coordinator(group: ProcessGroup, fleet: _Fleet) -> Child:
    _keep_tokens(fleet)
    port = fleet.server.rsplit(":", 1)[1]
    argv = [sys.executable, "-m", "coordinator", "--host", "127.0.0.1", "--port", port]
    argv += ["--state-dir", str(fleet.coordinator_dir)]
    # Heartbeats every few seconds keep the dashboard lively and commands quick to arrive.
    argv += ["--heartbeat-interval", str(_HEARTBEAT_S)]
    return group.start("coordinator", argv, _child_env({}))


def _start_bot(group: ProcessGroup, fleet: _Fleet, number: int) -> Child:
    name = f"demo-bot-{number}"
    env = _child_env(
        {
            "SERVER_BASE": fleet.server + "/v1",
            "BOT_NAME": name,
            "BOT_STATE_DIR": str(fleet.state_dir / "bots" / name),
            "BOT_ENROLL_TOKEN": fleet.enroll_token,
            # The demo's jobs take microseconds: let each bot hold a few batches at once.
            "MAX_CONCURRENCY": str(_BOT_CONCURRENCY),
            "CLAIM_BATCH_SIZE": str(_BOT_BATCH),
        }
    )
    return group.start(name, [sys.executable, "-m", "bot"], env)


async def _wait_until_ready(client: AsyncClient, coordinator: Child) -> None:
    deadline = time.monotonic() + _START_DEADLINE_S
    while not await client.ready():
        if not coordinator.alive:
            raise CliError(_died(coordinator))
        if time.monotonic() > deadline:
            raise CliError(
                f"the coordinator was not ready within {_START_DEADLINE_S:.0f} s; "
                f"see {coordinator.log_path}"
            )
        await asyncio.sleep(_POLL_S)


async def _wait_for_bots(client: AsyncClient, bots: list[Child]) -> None:
    deadline = time.monotonic() + _START_DEADLINE_S
    names = {bot.name for bot in bots}
    while True:
        for bot in bots:
            if not bot.alive:
                raise CliError(_died(bot))
        online = {bot.name for bot in await client.bots() if bot.state == "online"}
        if names <= online:
            return
        if time.monotonic() > deadline:
            missing = ", ".join(sorted(names - online))
            raise CliError(f"bots not online within {_START_DEADLINE_S:.0f} s: {missing}")
        await asyncio.sleep(_POLL_S)


async def _submit_all(client: AsyncClient, jobs: list[m.SubmitJob]) -> None:
    await client.submit_many(jobs)


async def _wait_for_all(
    client: AsyncClient, total: int, bar: StateProgress, bots: list[Child]
) -> dict[str, int]:
    deadline = time.monotonic() + _RUN_DEADLINE_S
    while True:
        stats = await client.stats()
        bar.update(stats.jobs)
        done = sum(stats.jobs.get(state, 0) for state in m.TERMINAL_STATES)
        if done >= total:
            return dict(stats.jobs)
        if not any(bot.alive for bot in bots):
            raise CliError(
                "every bot has stopped; see " + ", ".join(str(bot.log_path) for bot in bots)
            )
        if time.monotonic() > deadline:
            raise CliError(f"{total - done} jobs still unfinished after {_RUN_DEADLINE_S:.0f} s")
        await asyncio.sleep(_POLL_S)


async def _outcome(
    client: AsyncClient, submitted: int, counts: dict[str, int], elapsed_s: float
) -> DemoOutcome:
    names = {bot.id: bot.name for bot in await client.bots()}
    jobs = [job async for job in client.jobs(page_size=_PAGE)]
    failures = [job for job in jobs if job.state == "failed"]
    failures.sort(key=lambda job: job.error or "")
    examples = _distinct_errors(failures)
    return DemoOutcome(
        submitted=submitted,
        counts=Counter({state: counts.get(state, 0) for state in m.TERMINAL_STATES}),
        elapsed_s=elapsed_s,
        per_bot=tally_by_bot(jobs, names),
        failures=examples,
    )


def _distinct_errors(failures: list[m.JobView]) -> list[m.JobView]:
    """One example per error message first, then more of the same, up to a handful."""
    first_of_each: dict[str, m.JobView] = {}
    for job in failures:
        first_of_each.setdefault(job.error or "", job)
    firsts = list(first_of_each.values())
    rest = [job for job in failures if job not in firsts]
    return (firsts + rest)[:_EXAMPLE_FAILURES]


async def _stop(group: ProcessGroup, err: Console) -> None:
    children = group.children
    bots = [child for child in children if child.name != "coordinator"]
    servers = [child for child in children if child.name == "coordinator"]
    with err.status("stopping the bots and the coordinator"):
        await asyncio.shield(_stop_in_order(group, bots, servers))


async def _stop_in_order(group: ProcessGroup, bots: list[Child], servers: list[Child]) -> None:
    await group.stop(bots, _BOT_GRACE_S)
    await group.stop(servers, _SERVER_GRACE_S)


def _died(child: Child) -> str:
    code = child.process.returncode
    return f"{child.name} exited (status {code}) at start; last lines of {child.log_path}:\n" + (
        child.log_tail()
    )
