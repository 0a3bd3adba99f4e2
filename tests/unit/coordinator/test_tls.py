"""The coordinator's SSL context: built from PEM files, each fault naming its file, and
reloaded in place so that the next handshake shows the new certificate."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from coordinator.tls import CertificateReloader, TlsError, TlsFiles, is_loopback, server_context


def write_pair(ca: trustme.CA, folder: Path, name: str) -> TlsFiles:
    issued = ca.issue_cert("coordinator.test")
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    return TlsFiles(cert, key)


def handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> bytes:
    """A TLS handshake in memory; the DER certificate the client was shown."""
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    server_in, server_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client_side = client.wrap_bio(to_client, to_server, server_hostname="coordinator.test")
    server_side = server.wrap_bio(server_in, server_out, server_side=True)
    for _ in range(10):
        done = 0
        for side in (client_side, server_side):
            try:
                side.do_handshake()
                done += 1
            except ssl.SSLWantReadError:
                pass
        server_in.write(to_server.read())
        to_client.write(server_out.read())
        if done == 2:
            break
    certificate = client_side.getpeercert(binary_form=True)
    assert certificate is not None
    return certificate


def der(files: TlsFiles) -> bytes:
    return ssl.PEM_cert_to_DER_cert(files.cert.read_text())


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


def client_for(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def test_a_server_context_serves_its_certificate(ca: trustme.CA, tmp_path: Path) -> None:
    files = write_pair(ca, tmp_path, "server")
    context = server_context(files)
    assert context.verify_mode is ssl.CERT_NONE  # no client CA: no client certificate asked
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert handshake(context, client_for(ca)) == der(files)


def test_a_client_ca_requires_client_certificates(ca: trustme.CA, tmp_path: Path) -> None:
    files = write_pair(ca, tmp_path, "server")
    ca.cert_pem.write_to_path(str(tmp_path / "clients.pem"))
    context = server_context(TlsFiles(files.cert, files.key, tmp_path / "clients.pem"))
    assert context.verify_mode is ssl.CERT_REQUIRED


def test_each_fault_names_its_file(ca: trustme.CA, tmp_path: Path) -> None:
    files = write_pair(ca, tmp_path, "server")
    other = write_pair(ca, tmp_path, "other")
    missing = tmp_path / "missing.pem"
    with pytest.raises(TlsError, match=f"cannot read the certificate file {missing}"):
        server_context(TlsFiles(missing, files.key))
    with pytest.raises(TlsError, match=f"cannot read the key file {missing}"):
        server_context(TlsFiles(files.cert, missing))
    with pytest.raises(TlsError, match=f"key file {other.key} does not match"):
        server_context(TlsFiles(files.cert, other.key))
    with pytest.raises(TlsError, match=f"certificate file {files.key} holds no PEM certificate"):
        server_context(TlsFiles(files.key, files.key))
    with pytest.raises(TlsError, match=f"key file {files.cert} holds no PEM private key"):
        server_context(TlsFiles(files.cert, files.cert))
    with pytest.raises(TlsError, match=f"cannot read the client CA file {missing}"):
        server_context(TlsFiles(files.cert, files.key, missing))


def test_a_reload_shows_the_next_handshake_the_new_certificate(
    ca: trustme.CA, tmp_path: Path
) -> None:
    files = write_pair(ca, tmp_path, "server")
    first = der(files)
    context = server_context(files)
    reloader = CertificateReloader(context, files)

    renewed = write_pair(ca, tmp_path, "renewed")
    files.cert.write_bytes(renewed.cert.read_bytes())
    files.key.write_bytes(renewed.key.read_bytes())
    assert reloader.reload() and reloader.reloads == 1
    assert handshake(context, client_for(ca)) == der(renewed) != first


def test_a_failed_reload_keeps_the_current_pair(
    ca: trustme.CA, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = write_pair(ca, tmp_path, "server")
    served = der(files)
    context = server_context(files)
    reloader = CertificateReloader(context, files)

    # A new certificate whose key did not arrive (yet): the pair does not match.
    files.cert.write_bytes(write_pair(ca, tmp_path, "half").cert.read_bytes())
    assert not reloader.reload()
    assert handshake(context, client_for(ca)) == served
    files.key.unlink()
    assert not reloader.reload()
    assert handshake(context, client_for(ca)) == served
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 2 and all("keeping the current certificate" in e for e in errors)
    assert reloader.reloads == 0


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("10.1.2.3", False),
        ("coordinator.example", False),
    ],
)
def test_what_counts_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
