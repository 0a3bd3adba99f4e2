"""The SSL context of every caller of the coordinator (bots, the client, the command line).

It trusts the system's CAs plus an optional CA bundle, and presents an optional client
certificate (mutual TLS). Each caller names its own settings in errors, so a failure
says which file (`TlsFileError.field`) is at fault.
"""

from __future__ import annotations

import errno
import ssl
from typing import Literal

import aiohttp

TlsField = Literal["ca_file", "client_cert", "client_key"]


class TlsFileError(ValueError):
    """A CA bundle, client certificate or key cannot be used."""

    def __init__(self, field: TlsField, message: str) -> None:
        super().__init__(message)
        self.field = field


def client_context(
    ca_file: str | None = None, client_cert: str | None = None, client_key: str | None = None
) -> ssl.SSLContext | None:
    """A verifying client context; None when nothing is added to the defaults (aiohttp then
    uses its own verifying one). `client_key` alone is an error: the key of what?"""
    if client_key and not client_cert:
        raise TlsFileError("client_key", "a client key needs its client certificate too")
    if not ca_file and not client_cert:
        return None
    context = ssl.create_default_context()
    if ca_file:
        _readable("ca_file", ca_file)
        try:
            context.load_verify_locations(cafile=ca_file)
        except ssl.SSLError as exc:
            message = f"{ca_file} holds no usable CA certificate: {_reason(exc)}"
            raise TlsFileError("ca_file", message) from None
    if client_cert:
        _readable("client_cert", client_cert)
        if client_key:
            _readable("client_key", client_key)
        try:
            context.load_cert_chain(client_cert, client_key or None)
        except ssl.SSLError as exc:
            raise _chain_error(exc, client_cert, client_key) from None
    return context


def hung_up(error: BaseException) -> bool:
    """Whether the server closed the connection without answering: the way a coordinator
    that requires client certificates refuses a caller without one.

    That refusal comes after the handshake (TLS 1.3) and with no TLS alert (asyncio's
    server drops it), so the caller reads either an end of stream or, when its request had
    reached the server before the close, a reset: both forms are the same refusal.
    """
    if isinstance(error, aiohttp.ServerDisconnectedError | ConnectionResetError):
        return True
    return isinstance(error, OSError) and error.errno == errno.ECONNRESET


def _chain_error(exc: ssl.SSLError, cert: str, key: str | None) -> TlsFileError:
    if exc.reason == "KEY_VALUES_MISMATCH":
        return TlsFileError("client_key", f"{key or cert}: the key does not match {cert}")
    if key is None:
        return TlsFileError(
            "client_cert", f"{cert} needs a PEM certificate and its key: {_reason(exc)}"
        )
    return TlsFileError("client_cert", f"{cert} or {key}: {_reason(exc)}")


def _readable(field: TlsField, path: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise TlsFileError(field, f"cannot read {path}: {exc.strerror or exc}") from None


def _reason(exc: ssl.SSLError) -> str:
    return str(exc.reason or exc).replace("_", " ").lower()
