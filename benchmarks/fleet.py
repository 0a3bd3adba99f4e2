"""botfleet under benchmark: a coordinator process, bot processes, and an admin client.

Everything is started the way a user starts it (`python -m coordinator`, `python -m bot`
with the documented environment), with default settings, on 127.0.0.1, and registered on
an ExitStack that stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import trustme

from benchmarks.harness import (
    LOCALHOST,
    BenchmarkError,
    ChildProcess,
    free_port,
    port_open,
    python_module,
    require_alive,
    start_process,
    wait_until,
)
from botfleet.protocol import messages as m
from botfleet.protocol.codec import decode, encode

T = TypeVar("T")
START_TIMEOUT_S = 60.0
MAX_WAIT_MS = 30_000  # the longest GET /v1/jobs/{id}?wait_ms the contract allows
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True, slots=True)
class FleetCoordinator:
    process: ChildProcess
    port: int
    admin_token: str
    enroll_token: str
    state_dir: Path
    ca_file: Path | None = None  # serving HTTPS: the CA its callers trust

    @property
    def url(self) -> str:
        return f"{'http' if self.ca_file is None else 'https'}://{LOCALHOST}:{self.port}"

    @property
    def api(self) -> str:
        return f"{self.url}/v1"

    def ssl_context(self) -> ssl.SSLContext | bool:
        return True if self.ca_file is None else ssl.create_default_context(cafile=self.ca_file)


@dataclass(frozen=True, slots=True)
class FleetTls:
    """A CA made at run time and a certificate for 127.0.0.1 it signed."""

    ca_file: Path
    cert: Path
    key: Path

    @classmethod
    def make(cls, folder: Path) -> FleetTls:
        folder.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA()
        issued = ca.issue_cert(LOCALHOST)
        tls = cls(folder / "ca.pem", folder / "server.crt", folder / "server.key")
        ca.cert_pem.write_to_path(str(tls.ca_file))
        tls.cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
        issued.private_key_pem.write_to_path(str(tls.key))
        return tls

    def server_args(self) -> tuple[str, ...]:
        return ("--tls-cert", str(self.cert), "--tls-key", str(self.key))


def start_coordinator(
    stack: contextlib.ExitStack,
    workdir: Path,
    name: str = "coordinator",
    db_url: str | None = None,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    tls: FleetTls | None = None,
) -> FleetCoordinator:
    """A coordinator listening on a free port (HTTPS with `tls`); its database is `db_url`
    or a fresh SQLite file in `workdir/name`."""
    state_dir = workdir / name
    state_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    admin_token = secrets.token_urlsafe(24)
    enroll_token = secrets.token_urlsafe(24)
    args = python_module(
        "coordinator",
        "--host", LOCALHOST,
        "--port", str(port),
        "--db", db_url or f"sqlite:///{state_dir / 'botfleet.db'}",
        "--state-dir", str(state_dir),
        # "=": a url-safe token may begin with "-", which argparse would take for a flag.
        f"--admin-token={admin_token}",
        f"--enroll-token={enroll_token}",
        *(tls.server_args() if tls else ()),
        *extra_args,
    )  # fmt: skip
    process = start_process(stack, name, args, workdir, env)
    wait_until(
        lambda: port_open(port) or not process.alive(),
        START_TIMEOUT_S,
        f"{name} listening on {port}",
        interval_s=0.02,
    )
    require_alive(process)
    ca_file = None if tls is None else tls.ca_file
    return FleetCoordinator(process, port, admin_token, enroll_token, state_dir, ca_file)


def start_bot(
    stack: contextlib.ExitStack,
    workdir: Path,
    coordinator: FleetCoordinator,
    name: str,
    env: Mapping[str, str] | None = None,
) -> ChildProcess:
    """`python -m bot` with the documented environment and otherwise default settings."""
    state_dir = workdir / f"bot-{name}"
    state_dir.mkdir(parents=True, exist_ok=True)
    bot_env = {
        "SERVER_BASE": coordinator.api,
        "BOT_NAME": name,
        "BOT_STATE_DIR": str(state_dir),
        "BOT_ENROLL_TOKEN": coordinator.enroll_token,
        **({"BOT_CA_FILE": str(coordinator.ca_file)} if coordinator.ca_file else {}),
        **(env or {}),
    }
    return start_process(stack, f"bot-{name}", python_module("bot"), workdir, bot_env)


def sum_job(a: int, b: int) -> m.SubmitJob:
    return m.SubmitJob(op="sum", payload={"a": a, "b": b})


def sum_result_ok(job: m.JobView) -> bool:
    payload = job.payload
    return job.state == "succeeded" and job.result == {"result": payload["a"] + payload["b"]}


class AdminClient:
    """The producer/operator API with the admin token, over one keep-alive session."""

    def __init__(self, session: aiohttp.ClientSession, coordinator: FleetCoordinator) -> None:
        self._session = session
        self._api = coordinator.api
        self._headers = {
            "Authorization": f"Bearer {coordinator.admin_token}",
            "Content-Type": "application/json",
        }

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, coordinator: FleetCoordinator) -> AsyncIterator[AdminClient]:
        timeout = aiohttp.ClientTimeout(total=120)
        connector = aiohttp.TCPConnector(ssl=coordinator.ssl_context())
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            yield cls(session, coordinator)

    async def submit(self, job: m.SubmitJob) -> str:
        return (await self._call("POST", "/jobs", m.SubmitResponse, body=job)).id

    async def submit_bulk(self, jobs: Sequence[m.SubmitJob]) -> list[str]:
        request = m.BulkSubmitRequest(jobs=list(jobs))
        return (await self._call("POST", "/jobs/bulk", m.BulkSubmitResponse, body=request)).ids

    async def job(self, job_id: str, wait_ms: int = 0) -> m.JobView:
        params = {"wait_ms": str(wait_ms)} if wait_ms else {}
        return await self._call("GET", f"/jobs/{job_id}", m.JobView, params=params)

    async def jobs_page(self, state: str, limit: int, cursor: str | None) -> m.JobList:
        params = {"state": state, "limit": str(limit)}
        if cursor:
            params["cursor"] = cursor
        return await self._call("GET", "/jobs", m.JobList, params=params)

    async def stats(self) -> m.Stats:
        return await self._call("GET", "/stats", m.Stats)

    async def bots(self) -> m.BotList:
        return await self._call("GET", "/bots", m.BotList)

    async def _call(
        self,
        method: str,
        path: str,
        kind: type[T],
        body: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> T:
        data = encode(body) if body is not None else None
        async with self._session.request(
            method, self._api + path, data=data, params=params, headers=self._headers
        ) as response:
            payload = await response.read()
            if response.status >= 300:
                raise BenchmarkError(f"{method} {path}: HTTP {response.status}: {payload[:300]!r}")
        return decode(payload, kind)


async def wait_terminal(client: AdminClient, job_id: str, timeout_s: float) -> m.JobView:
    """The job once it is terminal, waiting server-side (`?wait_ms`), not by polling."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = await client.job(job_id, wait_ms=MAX_WAIT_MS)
        if job.state in TERMINAL:
            return job
        if time.monotonic() > deadline:
            raise BenchmarkError(f"job {job_id} still {job.state} after {timeout_s:.0f} s")


async def wait_for_succeeded(
    client: AdminClient,
    ids: Sequence[str],
    timeout_s: float,
    total: int | None = None,
    interval_s: float = 0.01,
) -> float:
    """Wait until every job in `ids` (submitted in this order) has succeeded.

    Waits server-side for the first and the last job, then polls the stats (a count over
    the whole table, too dear to poll all along) until they show `total` (default: as
    many as `ids`) succeeded. Returns when (perf_counter) the first result was seen.
    """
    wanted = len(ids) if total is None else total
    deadline = time.monotonic() + timeout_s
    await wait_terminal(client, ids[0], timeout_s)
    first_seen = time.perf_counter()
    await wait_terminal(client, ids[-1], max(deadline - time.monotonic(), 1.0))
    while True:
        stats = await client.stats()
        if stats.jobs.get("failed", 0):
            raise BenchmarkError(f"{stats.jobs['failed']} jobs failed: {stats.jobs}")
        if stats.jobs.get("succeeded", 0) >= wanted:
            return first_seen
        if time.monotonic() > deadline:
            raise BenchmarkError(f"not all {wanted} jobs succeeded in {timeout_s:.0f} s: {stats}")
        await asyncio.sleep(interval_s)


async def verify_all_succeeded(client: AdminClient, count: int, page: int = 1000) -> None:
    """List every succeeded job and check its result is a + b."""
    seen = 0
    cursor: str | None = None
    for _ in range(count // page + 2):  # bounded: one page more than needed
        listing = await client.jobs_page("succeeded", page, cursor)
        for job in listing.jobs:
            if not sum_result_ok(job):
                raise BenchmarkError(f"wrong result for {job.id}: {job.payload} -> {job.result}")
        seen += len(listing.jobs)
        cursor = listing.next_cursor
        if cursor is None:
            break
    if seen != count:
        raise BenchmarkError(f"listed {seen} succeeded jobs, expected {count}")
