"""Only the entry points build a `Bot`: no other module of `bot/` imports `bot.machine`."""

from __future__ import annotations

import ast
from pathlib import Path

BOT = Path(__file__).resolve().parents[3] / "bot"
ENTRY_POINTS = {"bot.main", "bot.__main__"}


def _module(path: Path) -> str:
    return ".".join(path.relative_to(BOT.parent).with_suffix("").parts)


def _imports(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_only_the_entry_points_import_the_machine() -> None:
    importers = {
        _module(path)
        for path in BOT.rglob("*.py")
        if "bot.machine" in _imports(ast.parse(path.read_text()))
    }
    assert importers <= ENTRY_POINTS and importers
