"""The dashboard link `botfleet server` prints at start.

The link that signs a browser in carries the admin token in the URL fragment
(`/#token=…`): a browser never sends the fragment to a server, so the token reaches
no access log, and the page removes it from the address bar at once. It is printed to
standard output only, never through `logging` (whose lines end up in files, journals
and log collectors), and only when standard output is a terminal: a person is
reading it. Otherwise the plain link is printed, with the command that signs in.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from botfleet.cli.dashboard import signed_in_link

# Addresses that mean "every interface": a browser on this machine reaches loopback.
_ANY_V4 = "0.0.0.0"
_ANY_V6 = "::"


def browsable_base(scheme: str, host: str, port: int) -> str:
    """`scheme://host:port` as a browser on this machine can open it."""
    if host in ("", _ANY_V4):
        host = "127.0.0.1"
    elif host == _ANY_V6:
        host = "::1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address: a host name or an IPv4 address has no colon
    return f"{scheme}://{host}:{port}"


def kept_admin_token(given: str | None, kept_file: Path | None) -> str | None:
    """The admin token the server runs with: given in its settings, or kept in its file."""
    if given is not None:
        return given
    if kept_file is None:
        return None
    try:
        return kept_file.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def announce_dashboard(base_url: str, token: str | None, out: TextIO) -> None:
    """One line on `out`: the signed-in link for a person at a terminal, else the plain one."""
    if token is not None and out.isatty():
        line = f"botfleet coordinator: dashboard {signed_in_link(base_url, token)}"
    else:
        line = (
            f"botfleet coordinator: dashboard {base_url.rstrip('/')}/ "
            "(`botfleet dashboard` opens it signed in)"
        )
    print(line, file=out, flush=True)
