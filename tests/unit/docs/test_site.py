"""Every Python example on the documentation site is code that a test runs.

A page shows Python either by including a file of docs/examples (`--8<-- "…"`, the
site's build puts the file in), or as an excerpt of one: its lines, in order, in one
example file. The examples themselves run against a real coordinator and bot in
tests/e2e/test_client_examples.py. The README's handler example runs here.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest

from bot import jobs
from bot.state import Job

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
# The contract's own text, which keeps the handler of its `sum` as the contract states it.
NOT_CHECKED = {"protocol.md"}
PAGES = sorted(
    path for path in DOCS.rglob("*.md") if str(path.relative_to(DOCS)) not in NOT_CHECKED
)
_PYTHON_BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_SNIPPET = re.compile(r'^--8<-- "(?P<path>[^":]+)(?::(?P<section>[\w-]+))?"$')


def python_blocks(text: str) -> list[str]:
    return [match.group(1) for match in _PYTHON_BLOCK.finditer(text)]


def code_lines(text: str) -> list[str]:
    """The lines that carry code: stripped, without blank lines or trailing comments."""
    lines = []
    for line in text.splitlines():
        code = re.sub(r"\s+#.*$", "", line).strip()
        if code and not code.startswith("#"):
            lines.append(code)
    return lines


def is_excerpt(block: str, source: str) -> bool:
    """Every code line of `block`, in order, among the code lines of `source`."""
    remaining = iter(code_lines(source))
    return all(any(line == candidate for candidate in remaining) for line in code_lines(block))


def where_from(block: str) -> str | None:
    """The example a block shows, or None when it shows code no test runs."""
    included = [_SNIPPET.match(line.strip()) for line in block.strip().splitlines()]
    if included and all(included):
        paths = {ROOT / match.group("path") for match in included if match}
        if all(path.parent == EXAMPLES and path.exists() for path in paths):
            return ", ".join(sorted(path.name for path in paths))
        return None
    for example in sorted(EXAMPLES.glob("*.py")):
        if is_excerpt(block, example.read_text(encoding="utf-8")):
            return example.name
    return None


@pytest.mark.parametrize("page", PAGES, ids=lambda path: str(path.relative_to(DOCS)))
def test_every_python_example_is_a_tested_file(page: Path) -> None:
    for block in python_blocks(page.read_text(encoding="utf-8")):
        assert where_from(block), f"{page.relative_to(ROOT)}: no example file holds\n{block}"


def test_the_handler_guide_includes_the_examples() -> None:
    text = (DOCS / "handlers.md").read_text(encoding="utf-8")
    assert [where_from(block) for block in python_blocks(text)] == [
        "handlers.py",
        "handlers.py",
        "handlers.py",
        "handler_jobs.py",
    ]


def test_an_excerpt_keeps_the_order_and_skips_comments() -> None:
    source = "import a\n\ndef f():\n    x = 1  # one\n    return x\n"
    assert is_excerpt("def f():\n    return x   # why\n", source)
    assert not is_excerpt("return x\nx = 1\n", source)
    assert not is_excerpt("x = 2\n", source)
    assert where_from('--8<-- "docs/examples/nowhere.py"') is None
    assert where_from('--8<-- "docs/examples/handlers.py:async"') == "handlers.py"


def test_the_readme_handler_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    (block,) = python_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    monkeypatch.setattr(jobs, "default_registry", jobs.Registry())  # `@op` registers there
    example = ModuleType("readme_example")
    exec(compile(block, "README.md", "exec"), example.__dict__)
    registry = jobs.Registry()
    registry.collect(example)
    handler = registry.get("resize")
    assert handler is not None and inspect.iscoroutinefunction(handler)
    job = Job(id="job_1", op="resize", payload={"path": "in.png"})
    assert asyncio.run(handler(job)) == {"done": "in.png"}
