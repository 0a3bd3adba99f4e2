"""HTTPS for the coordinator: the server's SSL context, checked at start, reloaded on SIGHUP.

A reload loads the new certificate and key into the live context, so handshakes after
it present them while connections already open (bots on keep-alive) carry on. A new
pair is first tried in a throwaway context: a bad one never reaches the live context,
which keeps serving the old certificate.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("coordinator.tls")

_PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"
_PEM_PRIVATE_KEY = b"PRIVATE KEY-----"


class TlsError(Exception):
    """A certificate, key or CA file cannot be used; the message names the file."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    cert: Path
    key: Path
    client_ca: Path | None = None  # set: every caller must present a certificate it signed


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """A server context holding `files`' certificate and key (and client CA); `TlsError`
    names the file that cannot be read, parsed, or does not match."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    load_pair(context, files)
    if files.client_ca is not None:
        _read(files.client_ca, "client CA file", _PEM_CERTIFICATE)
        try:
            context.load_verify_locations(cafile=str(files.client_ca))
        except ssl.SSLError as exc:
            raise TlsError(f"client CA file {files.client_ca}: {_reason(exc)}") from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def load_pair(context: ssl.SSLContext, files: TlsFiles) -> None:
    """Load `files`' certificate and key into `context`, after proving them in a context of
    their own: on `TlsError`, `context` is left as it was."""
    _read(files.cert, "certificate file", _PEM_CERTIFICATE)
    _read(files.key, "key file", _PEM_PRIVATE_KEY)
    trial = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        trial.load_cert_chain(str(files.cert), str(files.key))
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc) or exc.reason == "KEY_VALUES_MISMATCH":
            raise TlsError(
                f"key file {files.key} does not match the certificate in {files.cert}"
            ) from None
        raise TlsError(
            f"certificate file {files.cert} or key file {files.key}: {_reason(exc)}"
        ) from None
    context.load_cert_chain(str(files.cert), str(files.key))


class CertificateReloader:
    """Loads the certificate and key again into the live context (on SIGHUP)."""

    def __init__(self, context: ssl.SSLContext, files: TlsFiles) -> None:
        self.context = context
        self.files = files
        self.reloads = 0  # successful ones

    def reload(self) -> bool:
        """Whether the new pair is in use; a failure is logged once and changes nothing."""
        try:
            load_pair(self.context, self.files)
        except TlsError as exc:
            log.error("certificate reload failed, keeping the current certificate: %s", exc)
            return False
        self.reloads += 1
        log.info("certificate reloaded from %s: new connections use it", self.files.cert)
        return True


def is_loopback(host: str) -> bool:
    """Whether listening on `host` keeps the coordinator on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name, or every address ("", "0.0.0.0" is an address)


def _read(path: Path, what: str, marker: bytes) -> None:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TlsError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None
    if marker not in data:
        raise TlsError(f"{what} {path} holds no PEM {_kind(marker)}")


def _kind(marker: bytes) -> str:
    return "certificate" if marker == _PEM_CERTIFICATE else "private key"


def _reason(exc: ssl.SSLError) -> str:
    return str(exc.reason or exc).replace("_", " ").lower()
