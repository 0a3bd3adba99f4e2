"""The reference pages of the documentation site, generated from the code they describe.

Each page is Markdown made from the definitions themselves (argparse parsers, settings,
the protocol's structs), so it cannot drift from what the programs do. The site's
build hook (docs/hooks/reference.py) puts `render(name)` where a page says
`<!-- reference:NAME -->`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from botfleet.reference.cli import cli_reference
from botfleet.reference.http import http_reference
from botfleet.reference.settings import settings_reference

PAGES: Mapping[str, Callable[[], str]] = {
    "cli": cli_reference,
    "http": http_reference,
    "settings": settings_reference,
}


# A line of its own in a page: `<!-- reference:cli -->`. An HTML comment, so the page
# still reads well where it is shown unbuilt (on GitHub, say).
MARKER = re.compile(r"^<!-- reference:([A-Za-z0-9_-]+) -->[ \t]*$", re.MULTILINE)


class UnknownReference(LookupError):
    """A page asks for a reference section that does not exist."""


def render(name: str) -> str:
    """The Markdown of reference section `name` (one of `PAGES`)."""
    try:
        make = PAGES[name]
    except KeyError:
        raise UnknownReference(
            f"no reference {name!r}; there are: {', '.join(sorted(PAGES))}"
        ) from None
    return make()


def fill(markdown: str) -> str:
    """`markdown` with every reference marker replaced by its section."""
    return MARKER.sub(lambda match: render(match.group(1)), markdown)


__all__ = ["MARKER", "PAGES", "UnknownReference", "fill", "render"]
