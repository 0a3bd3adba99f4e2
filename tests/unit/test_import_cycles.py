"""No import cycle in `bot/`, `coordinator/` or `botfleet/`.

The graph is read from the source with `ast`, not from `sys.modules`, so an import that
only the type checker follows (`if TYPE_CHECKING:`) counts too: such a cycle still
knots the modules together for a reader. Imports inside functions are left out; they
run late on purpose.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "coordinator", "botfleet")

# module -> {imported module: line of the first such import}
Graph = dict[str, dict[str, int]]


def module_names(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Every module under the packages, by dotted name (a package by its own name)."""
    names: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names[".".join(parts)] = path
    return names


def _module_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports that run when the module loads: any depth except inside a function."""
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            pending.extend(ast.iter_child_nodes(node))


def _base(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a `from … import` names (relative levels resolved)."""
    if node.level == 0:
        return node.module or ""
    parts = module.split(".")
    # `from . import x` in a package's __init__ means the package itself.
    keep = len(parts) - node.level + (1 if is_package else 0)
    if keep < 1:
        raise ValueError(f"{module}: relative import beyond the top package")
    return ".".join([*parts[:keep], *([node.module] if node.module else [])])


def import_graph(root: Path, packages: Iterable[str]) -> Graph:
    modules = module_names(root, packages)
    graph: Graph = {}
    for module, path in modules.items():
        edges: dict[str, int] = {}
        is_package = path.name == "__init__.py"
        for node in _module_level_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = _base(module, is_package, node)
                # `from pkg import name` loads pkg.name when that is a module, else pkg.
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            for target in targets:
                if target in modules and target != module:
                    edges.setdefault(target, node.lineno)
        graph[module] = edges
    return graph


def strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's algorithm; the components of more than one module, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def a_cycle(graph: Graph, component: list[str]) -> list[str]:
    """One shortest way round the component from its first module back to it."""
    members = set(component)
    start = component[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for target in sorted(graph[node]):
                if target == start:
                    return [*paths[node], start]
                if target in members and target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"{component} is not strongly connected")


def describe(graph: Graph, modules: dict[str, Path], component: list[str]) -> str:
    path = a_cycle(graph, component)
    steps = [
        f"  {here} imports {there} ({modules[here].relative_to(ROOT).as_posix()}"
        f":{graph[here][there]})"
        for here, there in itertools.pairwise(path)
    ]
    return f"{len(component)} modules: {', '.join(component)}\n" + "\n".join(steps)


def test_no_import_cycle() -> None:
    graph = import_graph(ROOT, PACKAGES)
    modules = module_names(ROOT, PACKAGES)
    cycles = [describe(graph, modules, component) for component in strongly_connected(graph)]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


# ---------------------------------------------------------------- the graph builder itself


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_builder_follows_every_kind_of_import(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.sub import deep\nVALUE = 1\n",
            "pkg/a.py": "import pkg.b\nfrom pkg import VALUE\n",
            "pkg/b.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from . import c\n"
                "def late():\n    import pkg.a\n"
            ),
            "pkg/c.py": "import os\nclass K:\n    from .sub.deep import THING\n",
            "pkg/sub/__init__.py": "from .. import c\n",
            "pkg/sub/deep.py": "from ..a import x\nfrom . import other\nTHING = 1\n",
        },
    )

    graph = import_graph(tmp_path, ["pkg"])

    assert graph == {
        "pkg": {"pkg.sub.deep": 1},
        "pkg.a": {"pkg.b": 1, "pkg": 2},  # VALUE is a name, so the edge goes to the package
        "pkg.b": {"pkg.c": 3},  # the TYPE_CHECKING import counts, the one in late() not
        "pkg.c": {"pkg.sub.deep": 3},  # a class body runs at import
        "pkg.sub": {"pkg.c": 1},
        "pkg.sub.deep": {"pkg.a": 1, "pkg.sub": 2},  # `other` is no module: the package
    }
    assert strongly_connected(graph) == [
        ["pkg", "pkg.a", "pkg.b", "pkg.c", "pkg.sub", "pkg.sub.deep"]
    ]


@pytest.mark.parametrize(
    ("b_source", "cycles"),
    [
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import A\n", 1),
        ("def f():\n    from pkg.a import A\n", 0),
        ("X = 1\n", 0),
    ],
    ids=["type-checking-cycle", "import-inside-a-function", "no-import"],
)
def test_a_cycle_is_found_and_named(tmp_path: Path, b_source: str, cycles: int) -> None:
    _write(
        tmp_path,
        {"pkg/__init__.py": "", "pkg/a.py": "from .b import X\nA = 1\n", "pkg/b.py": b_source},
    )
    graph = import_graph(tmp_path, ["pkg"])

    components = strongly_connected(graph)

    assert len(components) == cycles
    if cycles:
        assert components == [["pkg.a", "pkg.b"]]
        assert a_cycle(graph, components[0]) == ["pkg.a", "pkg.b", "pkg.a"]
