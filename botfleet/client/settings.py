"""Where the client finds the coordinator, its token and the CA to trust.

Each setting comes from the argument when given, else from the environment.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from botfleet.tls import TlsField, TlsFileError, client_context

DEFAULT_SERVER = "http://127.0.0.1:8000"
ENV_SERVER = "BOTFLEET_SERVER"
ENV_TOKEN = "BOTFLEET_TOKEN"
ENV_ADMIN_TOKEN = "BOTFLEET_ADMIN_TOKEN"  # what the command line has always read
ENV_CA_FILE = "BOTFLEET_CA_FILE"
ENV_CLIENT_CERT = "BOTFLEET_CLIENT_CERT"
ENV_CLIENT_KEY = "BOTFLEET_CLIENT_KEY"
# The argument and the variable of each TLS file, for errors.
TLS_SETTINGS: Mapping[TlsField, str] = {
    "ca_file": f"ca_file ({ENV_CA_FILE})",
    "client_cert": f"client_cert ({ENV_CLIENT_CERT})",
    "client_key": f"client_key ({ENV_CLIENT_KEY})",
}


@dataclass(frozen=True, slots=True)
class Settings:
    server: str  # base URL without the `/v1` path, e.g. http://127.0.0.1:8000
    token: str | None = None
    ca_file: str | None = None
    timeout_s: float = 30.0  # per request, on top of any server-side wait it asks for
    # Mutual TLS: the certificate shown to the coordinator, and its key (None: in the cert).
    client_cert: str | None = None
    client_key: str | None = None

    def ssl_context(self) -> ssl.SSLContext | None:
        """The system's CAs plus `ca_file`, and the client certificate; None (aiohttp's
        default) with neither. A file that cannot be used raises `ValueError` naming it."""
        try:
            return client_context(self.ca_file, self.client_cert, self.client_key)
        except TlsFileError as exc:
            raise ValueError(f"{TLS_SETTINGS[exc.field]}: {exc}") from None


def resolve(
    server: str | None,
    token: str | None,
    ca_file: str | None,
    timeout_s: float,
    environ: Mapping[str, str],
    client_cert: str | None = None,
    client_key: str | None = None,
) -> Settings:
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be positive, not {timeout_s}")
    settings = Settings(
        server=normalize_server(server or environ.get(ENV_SERVER) or DEFAULT_SERVER),
        token=token or environ.get(ENV_TOKEN) or environ.get(ENV_ADMIN_TOKEN) or None,
        ca_file=ca_file or environ.get(ENV_CA_FILE) or None,
        timeout_s=timeout_s,
        client_cert=client_cert or environ.get(ENV_CLIENT_CERT) or None,
        client_key=client_key or environ.get(ENV_CLIENT_KEY) or None,
    )
    settings.ssl_context()  # a file that cannot be used fails here, not at the first call
    return settings


def normalize_server(url: str) -> str:
    """Accept `host:port`, a trailing slash, or a bot's SERVER_BASE ending in `/v1`."""
    url = url.strip().rstrip("/")
    if not url:
        raise ValueError("empty URL")
    if "://" not in url:
        url = "http://" + url
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    try:
        parts = urlsplit(url)
        host = parts.hostname if parts.port != 0 else None  # `.port` checks the port
    except ValueError:
        host = None
    if not host:
        raise ValueError(f"{url!r} is not a valid URL")
    return url.removesuffix("/v1")
