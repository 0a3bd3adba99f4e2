"""`botfleet dashboard`: open the coordinator's dashboard in the local browser, signed in.

The link carries the token in its fragment (`/#token=…`), which a browser never sends
to the server; the page keeps the token for its tab and removes it from the address
bar. The command never prints the token: where no browser opens, it prints the plain
link and how to sign in by hand.
"""

from __future__ import annotations

import argparse
import os
import sys
import webbrowser
from collections.abc import Callable, Mapping, Sequence
from typing import TextIO
from urllib.parse import quote

from botfleet.cli.errors import EXIT_OK, CliError
from botfleet.cli.settings import resolve_settings

Opener = Callable[[str], bool]


def signed_in_link(base_url: str, token: str) -> str:
    """The dashboard at `base_url`, signing in with `token` (in the fragment only)."""
    return f"{base_url.rstrip('/')}/#token={quote(token, safe='')}"


def add_dashboard_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: Sequence[argparse.ArgumentParser],
) -> None:
    subparsers.add_parser(
        "dashboard",
        parents=parents,
        help="open the dashboard in this machine's browser, signed in",
        description="Open the coordinator's dashboard in the local web browser (the one "
        "the BROWSER environment variable names, else the system's), signed in with the "
        "token the operator commands use. The token travels in the link's fragment, "
        "which is never sent to the server, and the page removes it from the address bar.",
    )


def run_dashboard_command(
    args: argparse.Namespace,
    environ: Mapping[str, str] | None = None,
    opener: Opener = webbrowser.open,
    out: TextIO | None = None,
) -> int:
    settings = resolve_settings(args, os.environ if environ is None else environ)
    plain = f"{settings.server}/"
    if not opener(signed_in_link(settings.server, settings.admin_token)):
        raise CliError(
            f"no browser could be opened here (the BROWSER environment variable may name "
            f"one); open {plain} and paste the token the operator commands use"
        )
    print(f"opened {plain} in the browser, signed in", file=out or sys.stdout, flush=True)
    return EXIT_OK
