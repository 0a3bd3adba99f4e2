"""Small Markdown builders shared by the reference pages: code spans and tables."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def code(text: str) -> str:
    """`text` as a code span, with enough backticks around it for any backtick inside."""
    fence = "`"
    while fence in text:
        fence += "`"
    padding = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{padding}{text}{padding}{fence}"


def cell(text: str) -> str:
    """Text fit for one table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table; every cell passes through `cell`."""
    lines = [
        "| " + " | ".join(cell(text) for text in header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    lines.extend("| " + " | ".join(cell(text) for text in row) + " |" for row in rows)
    return "\n".join(lines)


def seconds_text(value: float) -> str:
    """A duration as the flags take it: `7d`, `2h`, `5m`, `30s`, `0.5s`."""
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if value >= size and value % size == 0:
            return f"{int(value // size)}{unit}"
    return f"{value:g}s"
