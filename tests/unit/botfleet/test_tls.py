"""The callers' SSL context: the system's CAs plus a CA file, and a client certificate;
each file that cannot be used is named by the setting it came from."""

from __future__ import annotations

import errno
import ssl
from pathlib import Path

import aiohttp
import pytest
import trustme

from botfleet.tls import TlsFileError, client_context, hung_up


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    ca, other = trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    issued = ca.issue_cert("bot@botfleet.test")
    issued.cert_chain_pems[0].write_to_path(str(tmp_path / "client.crt"))
    issued.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    issued.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "both.pem"))
    other.issue_cert("x").private_key_pem.write_to_path(str(tmp_path / "other.key"))
    return {path.stem: path for path in tmp_path.iterdir()}


def test_nothing_added_leaves_aiohttps_default() -> None:
    assert client_context() is None


def test_a_ca_file_is_trusted_besides_the_system(files: dict[str, Path]) -> None:
    context = client_context(str(files["ca"]))
    assert context is not None
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    trusted = ssl.PEM_cert_to_DER_cert(files["ca"].read_text())
    assert trusted in context.get_ca_certs(binary_form=True)


def test_a_client_certificate_with_its_key_in_either_file(files: dict[str, Path]) -> None:
    assert client_context(None, str(files["client"].with_suffix(".crt")), str(files["client"]))
    assert client_context(None, str(files["both"])) is not None


@pytest.mark.parametrize(
    ("arguments", "field", "problem"),
    [
        (("missing.pem", None, None), "ca_file", "cannot read missing.pem"),
        (("client.key", None, None), "ca_file", "holds no usable CA certificate"),
        ((None, "missing.pem", None), "client_cert", "cannot read missing.pem"),
        ((None, "client.crt", "missing.pem"), "client_key", "cannot read missing.pem"),
        ((None, None, "client.key"), "client_key", "needs its client certificate"),
        ((None, "client.crt", "other.key"), "client_key", "does not match"),
        ((None, "client.crt", None), "client_cert", "needs a PEM certificate and its key"),
    ],
)
def test_each_bad_file_is_named(
    files: dict[str, Path],
    tmp_path: Path,
    arguments: tuple[str | None, ...],
    field: str,
    problem: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TlsFileError, match=problem) as caught:
        client_context(*arguments)
    assert caught.value.field == field


@pytest.mark.parametrize(
    "error",
    [
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientOSError(errno.ECONNRESET, "Connection reset by peer"),
        aiohttp.ClientConnectionResetError("Cannot write to closing transport"),
        ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
    ],
    ids=["end-of-stream", "reset-os-error", "reset-on-write", "reset"],
)
def test_both_forms_of_a_hang_up_are_one_refusal(error: BaseException) -> None:
    """Which form a refused caller reads depends on whether its request reached the server
    before the close: the hint must not depend on that race."""
    assert hung_up(error)


@pytest.mark.parametrize(
    "error",
    [
        aiohttp.ClientOSError(errno.ECONNREFUSED, "Connection refused"),
        TimeoutError(),
        aiohttp.ClientPayloadError("truncated"),
    ],
    ids=["refused", "timeout", "payload"],
)
def test_other_failures_are_no_hang_up(error: BaseException) -> None:
    assert not hung_up(error)
