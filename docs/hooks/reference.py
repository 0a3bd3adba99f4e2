"""MkDocs hook: the reference pages are filled from the code when the site is built.

A page line `<!-- reference:NAME -->` becomes `botfleet.reference.render(NAME)`; an
unknown name stops the build. The logic lives in `botfleet.reference`, where it is
typed and tested; this file only connects it to MkDocs.
"""

from __future__ import annotations

from typing import Any

from botfleet.reference import fill


def on_page_markdown(markdown: str, **_: Any) -> str:
    return fill(markdown)
