"""Named SQL statements, loaded from one `.sql` file per backend (Procrastinate style).

A file is a sequence of statements, each under a header line `-- name: some_name`.
Comment lines right below the header document the statement and stay in its text.
No SQL lives anywhere else: code asks for a statement by name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from importlib import resources

_HEADER = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$")

SQL_PACKAGE = "coordinator.store"
SQL_FOLDER = "sql"


class Queries(Mapping[str, str]):
    """An immutable name -> SQL mapping; a missing name is a KeyError naming the file."""

    def __init__(self, source: str, statements: Mapping[str, str]) -> None:
        self._source = source
        self._statements = dict(statements)

    def __getitem__(self, name: str) -> str:
        try:
            return self._statements[name]
        except KeyError:
            raise KeyError(f"no query named {name!r} in {self._source}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._statements)

    def __len__(self) -> int:
        return len(self._statements)


def parse_queries(text: str, source: str = "<string>") -> Queries:
    """Split `text` at its `-- name:` headers; a duplicate or empty statement is an error."""
    statements: dict[str, str] = {}
    name: str | None = None
    lines: list[str] = []

    def finish() -> None:
        if name is None:
            return
        body = "\n".join(lines).strip()
        if not body or all(line.lstrip().startswith("--") for line in body.splitlines()):
            raise ValueError(f"{source}: query {name!r} is empty")
        statements[name] = body

    for line in text.splitlines():
        header = _HEADER.match(line.strip())
        if header:
            finish()
            name = header.group(1)
            if name in statements:
                raise ValueError(f"{source}: query {name!r} is defined twice")
            lines = []
        elif name is not None:
            lines.append(line)
        elif line.strip() and not line.lstrip().startswith("--"):
            raise ValueError(f"{source}: SQL before the first '-- name:' header")
    finish()
    return Queries(source, statements)


def load_queries(filename: str) -> Queries:
    """Load `coordinator/store/sql/<filename>` (for example `sqlite_queries.sql`)."""
    path = resources.files(SQL_PACKAGE) / SQL_FOLDER / filename
    return parse_queries(path.read_text(encoding="utf-8"), source=filename)
