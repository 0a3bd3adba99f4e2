"""Where the operator commands find the coordinator and the token.

Order, first found wins: the flag, the environment variable, then (for the
token) the admin token the coordinator wrote into its state folder on first start.
Any role token works (`--token`/`BOTFLEET_TOKEN`); `--admin-token`/
`BOTFLEET_ADMIN_TOKEN` are the older names, still read.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from botfleet.cli.errors import UsageError
from botfleet.client import AsyncClient, RetryPolicy
from botfleet.client.settings import ENV_CA_FILE, ENV_CLIENT_CERT, ENV_CLIENT_KEY
from botfleet.client.settings import normalize_server as client_normalize_server
from botfleet.tls import TlsFileError, client_context

DEFAULT_SERVER = "http://127.0.0.1:8000"
DEFAULT_STATE_DIR = ".state"
ENV_SERVER = "BOTFLEET_SERVER"
ENV_TOKEN = "BOTFLEET_TOKEN"
ENV_ADMIN_TOKEN = "BOTFLEET_ADMIN_TOKEN"
ENV_STATE_DIR = "BOTFLEET_STATE_DIR"
ADMIN_TOKEN_FILE = "admin_token"
# A person at a terminal would rather wait a little for a coordinator that sheds load
# than see the command fail, but learns at once (after two quick tries) that none runs.
CLI_RETRY = RetryPolicy(connect_retries=2, base_s=0.2, cap_s=1.0, max_retry_after_s=10.0)


@dataclass(frozen=True, slots=True)
class ClientSettings:
    server: str  # base URL without the `/v1` path, e.g. http://127.0.0.1:8000
    admin_token: str
    timeout_s: float = 30.0
    ca_file: str | None = None
    client_cert: str | None = None  # mutual TLS
    client_key: str | None = None


# The flag and the variable of each TLS file, for errors.
_TLS_FLAGS = {
    "ca_file": f"--ca-file ({ENV_CA_FILE})",
    "client_cert": f"--client-cert ({ENV_CLIENT_CERT})",
    "client_key": f"--client-key ({ENV_CLIENT_KEY})",
}


def connect(settings: ClientSettings) -> AsyncClient:
    """The client every operator command uses (`async with connect(settings) as client`)."""
    return AsyncClient(
        settings.server,
        token=settings.admin_token,
        ca_file=settings.ca_file,
        client_cert=settings.client_cert,
        client_key=settings.client_key,
        timeout_s=settings.timeout_s,
        retry=CLI_RETRY,
        environ={},
    )


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--server",
        metavar="URL",
        help=f"coordinator base URL (env {ENV_SERVER}, default {DEFAULT_SERVER})",
    )
    group.add_argument(
        "--token",
        metavar="TOKEN",
        help=f"a role token (env {ENV_TOKEN}; else --admin-token/{ENV_ADMIN_TOKEN}; "
        "default: the admin token in the state folder)",
    )
    group.add_argument("--admin-token", metavar="TOKEN", help="the older name of --token")
    group.add_argument(
        "--state-dir",
        metavar="DIR",
        help=f"the coordinator's state folder, where it keeps its generated admin token "
        f"(env {ENV_STATE_DIR}, default {DEFAULT_STATE_DIR})",
    )
    group.add_argument(
        "--ca-file",
        metavar="FILE",
        help=f"a CA bundle to trust besides the system's, for an https:// server "
        f"(env {ENV_CA_FILE})",
    )
    group.add_argument(
        "--client-cert",
        metavar="FILE",
        help="a PEM client certificate (and its key, unless --client-key), for a coordinator "
        f"that requires one (mutual TLS) (env {ENV_CLIENT_CERT})",
    )
    group.add_argument(
        "--client-key", metavar="FILE", help=f"the client certificate's key (env {ENV_CLIENT_KEY})"
    )
    group.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=float,
        default=30.0,
        help="give up on a request after this long (default 30)",
    )


def normalize_server(url: str) -> str:
    """Accept `host:port`, a trailing slash, or a bot's SERVER_BASE ending in `/v1`."""
    try:
        return client_normalize_server(url)
    except ValueError as exc:
        raise UsageError(f"--server: {exc}") from None


def resolve_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> ClientSettings:
    server = normalize_server(args.server or environ.get(ENV_SERVER) or DEFAULT_SERVER)
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError("--timeout must be positive")
    token = (
        getattr(args, "token", None)
        or args.admin_token
        or environ.get(ENV_TOKEN)
        or environ.get(ENV_ADMIN_TOKEN)
    )
    if not token:
        state_dir = Path(args.state_dir or environ.get(ENV_STATE_DIR) or DEFAULT_STATE_DIR)
        token = read_admin_token(state_dir)
    ca_file = args.ca_file or environ.get(ENV_CA_FILE) or None
    client_cert = getattr(args, "client_cert", None) or environ.get(ENV_CLIENT_CERT) or None
    client_key = getattr(args, "client_key", None) or environ.get(ENV_CLIENT_KEY) or None
    try:
        client_context(ca_file, client_cert, client_key)
    except TlsFileError as exc:
        raise UsageError(f"{_TLS_FLAGS[exc.field]}: {exc}") from None
    return ClientSettings(
        server=server,
        admin_token=token,
        timeout_s=args.timeout,
        ca_file=ca_file,
        client_cert=client_cert,
        client_key=client_key,
    )


def read_admin_token(state_dir: Path) -> str:
    path = state_dir / ADMIN_TOKEN_FILE
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise UsageError(
            f"no admin token: pass --token (any role's) or set {ENV_TOKEN}, or run where "
            f"`botfleet server` keeps its state ({path} does not exist; see --state-dir)"
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot read the admin token from {path}: {exc.strerror}") from None
    if not token:
        raise UsageError(f"the admin token file {path} is empty")
    return token
