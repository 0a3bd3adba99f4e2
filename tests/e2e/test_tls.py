"""HTTPS between real processes, with certificates made here (trustme).

- A bot that trusts the coordinator's CA runs jobs to completion; the command line too.
- A bot, or a command, trusting another CA stops with one line naming the server and the
  reason, and a non-zero exit; plain HTTP to the HTTPS port gets no answer.
- Mutual TLS (`--tls-client-ca`): callers without a client certificate are refused (a bot
  halts with exit 3), with one (bot, command line, Python client) they work.
- SIGHUP loads a new certificate: new connections get it while a running bot goes on
  working; a new key that does not match is refused and the old pair kept.
- A certificate or key that cannot be used stops the server at start with one line.
- Listening off loopback without TLS warns once; with TLS it does not.
"""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from botfleet.client import Client, ConnectionFailed
from botfleet.processes import child_env, free_port, python_module
from tests.support.processes import (
    Coordinator,
    Process,
    http_json,
    port_open,
    start_bot,
    start_coordinator,
    stopped_after,
    wait_until,
)

pytestmark = pytest.mark.e2e

HOST = "127.0.0.1"
TIMING = ["--bot-lease-ttl", "8", "--heartbeat-interval", "0.5", "--reaper-interval", "0.25"]


@dataclass(frozen=True)
class Pki:
    """A CA with a server certificate for 127.0.0.1, a CA for clients, and a stranger CA."""

    folder: Path
    ca: trustme.CA
    ca_file: Path
    cert: Path
    key: Path
    client_ca_file: Path
    client_pem: Path  # a client certificate with its key, signed by the client CA
    stranger_ca_file: Path  # a CA that signed nothing here

    def issue(self, name: str) -> tuple[Path, Path]:
        """A new server certificate and key from the same CA."""
        issued = self.ca.issue_cert(HOST, "localhost")
        cert, key = self.folder / f"{name}.crt", self.folder / f"{name}.key"
        cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
        issued.private_key_pem.write_to_path(str(key))
        return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca, client_ca, stranger = trustme.CA(), trustme.CA(), trustme.CA()
    for authority, name in ((ca, "ca"), (client_ca, "client-ca"), (stranger, "stranger-ca")):
        authority.cert_pem.write_to_path(str(folder / f"{name}.pem"))
    client_ca.issue_cert("bot@botfleet.test").private_key_and_cert_chain_pem.write_to_path(
        str(folder / "client.pem")
    )
    pki = Pki(
        folder=folder,
        ca=ca,
        ca_file=folder / "ca.pem",
        cert=folder / "server.crt",
        key=folder / "server.key",
        client_ca_file=folder / "client-ca.pem",
        client_pem=folder / "client.pem",
        stranger_ca_file=folder / "stranger-ca.pem",
    )
    cert, key = pki.issue("server")
    assert (cert, key) == (pki.cert, pki.key)
    return pki


def tls_args(cert: Path, key: Path) -> list[str]:
    return ["--tls-cert", str(cert), "--tls-key", str(key)]


@contextlib.contextmanager
def https_coordinator(
    workdir: Path, pki: Pki, *extra: str, cert: Path | None = None, key: Path | None = None
) -> Iterator[Coordinator]:
    coordinator = start_coordinator(
        workdir,
        extra_args=[*TIMING, *tls_args(cert or pki.cert, key or pki.key), *extra],
        ca_file=pki.ca_file,
    )
    try:
        yield coordinator
    finally:
        coordinator.process.stop()


def submit_sums(coordinator: Coordinator, count: int) -> list[str]:
    return [
        coordinator.admin("POST", "/jobs", {"op": "sum", "payload": {"a": i, "b": 1}})["id"]
        for i in range(count)
    ]


def wait_succeeded(coordinator: Coordinator, job_ids: list[str]) -> None:
    def all_done() -> bool:
        states = [coordinator.admin("GET", f"/jobs/{job_id}")["state"] for job_id in job_ids]
        assert "failed" not in states, states
        return all(state == "succeeded" for state in states)

    wait_until(all_done, what=f"{len(job_ids)} jobs succeeded")


def tls_bot(workdir: Path, coordinator: Coordinator, name: str, **env: str) -> Process:
    return start_bot(workdir, [coordinator.api], name, env=env)


def served_certificate(port: int) -> bytes:
    """The DER certificate a new connection to `port` is shown (not verified)."""
    return ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate((HOST, port)))


def pem_der(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


def cli(coordinator: Coordinator, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`botfleet …` with only the environment given (no CA file unless it says so)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BOTFLEET_", "BOT_"))}
    clean.update(BOTFLEET_SERVER=coordinator.url, BOTFLEET_ADMIN_TOKEN="admin-secret", **env)
    return subprocess.run(
        python_module("botfleet", *args),
        capture_output=True,
        text=True,
        env=clean,
        timeout=60,
        check=False,
    )


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_bots_and_the_command_line_work_over_https(tmp_path: Path, pki: Pki) -> None:
    with https_coordinator(tmp_path, pki) as coordinator:
        assert "listening on https://" in coordinator.process.log()
        bot = tls_bot(tmp_path, coordinator, "trusting", BOT_CA_FILE=str(pki.ca_file))
        with stopped_after(coordinator, [bot]):
            wait_succeeded(coordinator, submit_sums(coordinator, 5))
            assert '"sum"' in coordinator.botfleet("jobs", "--json")
            assert bot.alive()

            with pytest.raises((urllib.error.URLError, ConnectionError)):
                http_json(f"http://{HOST}:{coordinator.port}/v1/stats")


def test_a_caller_trusting_another_ca_stops_with_one_line(tmp_path: Path, pki: Pki) -> None:
    with https_coordinator(tmp_path, pki) as coordinator:
        bot = tls_bot(tmp_path, coordinator, "stranger", BOT_CA_FILE=str(pki.stranger_ca_file))
        with stopped_after(coordinator, [bot]):
            wait_until(lambda: not bot.alive(), what="the bot stopping")
            assert bot.returncode not in (None, 0)
            log = bot.log()
            assert "Traceback" not in log
            (halt,) = [line for line in log.splitlines() if "SAFE_HALT:" in line]
            assert log.strip().splitlines()[-1] == halt  # the last word, and one line
            assert coordinator.api in halt
            assert "certificate verify failed" in halt
            assert "BOT_CA_FILE" in halt
            assert "registration failed" not in log  # no retry loop

            done = cli(coordinator, "jobs", BOTFLEET_CA_FILE=str(pki.stranger_ca_file))
            assert done.returncode == 1
            line = one_error_line(done.stderr)
            assert coordinator.url in line and "certificate verify failed" in line


def test_mutual_tls_refuses_callers_without_a_client_certificate(tmp_path: Path, pki: Pki) -> None:
    with https_coordinator(tmp_path, pki, "--tls-client-ca", str(pki.client_ca_file)) as coord:
        with_cert = tls_bot(
            tmp_path, coord, "with-cert",
            BOT_CA_FILE=str(pki.ca_file), BOT_CLIENT_CERT=str(pki.client_pem),
        )  # fmt: skip
        without = tls_bot(tmp_path, coord, "without-cert", BOT_CA_FILE=str(pki.ca_file))
        with stopped_after(coord, [with_cert, without]):
            # The test's own calls present the client certificate too.
            context = ssl.create_default_context(cafile=pki.ca_file)
            context.load_cert_chain(pki.client_pem)
            status, _ = http_json(coord.api + "/stats", token="admin-secret", context=context)
            assert status == 200
            with pytest.raises((urllib.error.URLError, ConnectionError)):
                no_cert = ssl.create_default_context(cafile=pki.ca_file)
                http_json(coord.api + "/stats", token="admin-secret", context=no_cert)

            with Client(
                coord.url, token="admin-secret", ca_file=str(pki.ca_file),
                client_cert=str(pki.client_pem),
            ) as client:  # fmt: skip
                jobs = client.submit_many([("sum", {"a": i, "b": 2}) for i in range(5)])
                assert [job.result(timeout=60) for job in jobs] == [
                    {"result": i + 2} for i in range(5)
                ]
            with (
                Client(coord.url, token="admin-secret", ca_file=str(pki.ca_file)) as client,
                pytest.raises(ConnectionFailed, match="client certificates"),
            ):
                client.stats()

            refused = cli(coord, "stats", BOTFLEET_CA_FILE=str(pki.ca_file))
            assert refused.returncode == 1
            assert "client certificates" in one_error_line(refused.stderr)
            accepted = cli(
                coord, "stats",
                BOTFLEET_CA_FILE=str(pki.ca_file), BOTFLEET_CLIENT_CERT=str(pki.client_pem),
            )  # fmt: skip
            assert accepted.returncode == 0, accepted.stderr

            # The bot without one halts (exit 3) as for any certificate failure, no retry loop.
            wait_until(lambda: not without.alive(), what="the bot without a certificate halting")
            assert without.returncode == 3
            log = without.log()
            (halt,) = [line for line in log.splitlines() if "SAFE_HALT:" in line]
            assert "requires a client certificate" in halt and "BOT_CLIENT_CERT" in halt
            assert "registration failed" not in log
            status, answer = http_json(coord.api + "/bots", token="admin-secret", context=context)
            assert {bot["name"] for bot in answer["bots"]} == {"with-cert"}


def test_sighup_reloads_the_certificate_without_dropping_bots(tmp_path: Path, pki: Pki) -> None:
    cert, key = pki.issue("rotating")
    first = cert.read_bytes()
    with https_coordinator(tmp_path, pki, cert=cert, key=key) as coordinator:
        bot = tls_bot(tmp_path, coordinator, "steady", BOT_CA_FILE=str(pki.ca_file))
        with stopped_after(coordinator, [bot]):
            wait_succeeded(coordinator, submit_sums(coordinator, 3))
            assert served_certificate(coordinator.port) == pem_der(cert)

            # A key that does not match: refused, the current pair stays.
            _, stranger_key = pki.issue("mismatched")
            key.write_bytes(stranger_key.read_bytes())
            os.kill(coordinator.process.pid, signal.SIGHUP)
            wait_until(
                lambda: "certificate reload failed" in coordinator.process.log(),
                what="the failed reload logged",
            )
            assert served_certificate(coordinator.port) == ssl.PEM_cert_to_DER_cert(first.decode())

            new_cert, new_key = pki.issue("renewed")
            cert.write_bytes(new_cert.read_bytes())
            key.write_bytes(new_key.read_bytes())
            os.kill(coordinator.process.pid, signal.SIGHUP)
            wait_until(
                lambda: served_certificate(coordinator.port) == pem_der(new_cert),
                what="new connections shown the new certificate",
            )
            wait_succeeded(coordinator, submit_sums(coordinator, 5))
            assert bot.alive()
            log = coordinator.process.log()
            assert log.count("certificate reload failed") == 1
            assert "certificate reloaded" in log
            bots = coordinator.admin("GET", "/bots")["bots"]
            assert [b["state"] for b in bots if b["name"] == "steady"] == ["online"]
            bot.stop()
            # The same registration all along: the bot never lost the coordinator.
            assert bot.log().count("registered as") == 1
            assert "SAFE_HALT" not in bot.log() and "circuit" not in bot.log()


def _server_start(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        python_module(
            "coordinator",
            "--port",
            str(free_port()),
            "--state-dir",
            str(tmp_path / "state"),
            "--admin-token",
            "a",
            "--enroll-token",
            "e",
            *args,
        ),
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("fault", ["missing certificate", "missing key", "mismatched key"])
def test_a_certificate_or_key_that_cannot_be_used_stops_the_server(
    tmp_path: Path, pki: Pki, fault: str
) -> None:
    cert, key = pki.cert, pki.key
    if fault == "missing certificate":
        cert = named = tmp_path / "absent.crt"
    elif fault == "missing key":
        key = named = tmp_path / "absent.key"
    else:
        _, key = pki.issue("other")
        named = key
    done = _server_start(tmp_path, *tls_args(cert, key))
    assert done.returncode != 0
    line = one_error_line(done.stderr)
    assert str(named) in line


@pytest.mark.parametrize("with_tls", [False, True])
def test_listening_off_loopback_without_tls_warns_once(
    tmp_path: Path, pki: Pki, with_tls: bool
) -> None:
    port = free_port("0.0.0.0")
    args = python_module(
        "coordinator", "--host", "0.0.0.0", "--port", str(port),
        "--state-dir", str(tmp_path / "state"), "--admin-token", "a", "--enroll-token", "e",
        *(tls_args(pki.cert, pki.key) if with_tls else []),
    )  # fmt: skip
    process = Process("coordinator", args, tmp_path / "coordinator.log", child_env()).start()
    try:
        wait_until(
            lambda: "coordinator listening on" in process.log() or not process.alive(),
            what="the coordinator listening",
        )
        assert port_open(port)
        warnings = [line for line in process.log().splitlines() if "without TLS" in line]
        assert len(warnings) == (0 if with_tls else 1), process.log()
        if warnings:
            assert "WARNING" in warnings[0] and "0.0.0.0" in warnings[0]
    finally:
        process.stop()


def test_a_bot_with_an_unusable_tls_file_stops_at_start(tmp_path: Path, pki: Pki) -> None:
    env = child_env(
        {
            "SERVER_BASE": f"https://{HOST}:{free_port()}/v1",
            "BOT_STATE_DIR": str(tmp_path / "bot"),
            "BOT_CA_FILE": str(pki.ca_file),
            "BOT_CLIENT_CERT": str(pki.cert),
            "BOT_CLIENT_KEY": str(tmp_path / "absent.key"),
        }
    )
    done = subprocess.run(
        python_module("bot"), capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert done.returncode == 2
    line = one_error_line(done.stderr + done.stdout)
    assert f"BOT_CLIENT_KEY: cannot read {tmp_path / 'absent.key'}" in line
