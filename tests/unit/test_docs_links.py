"""Every relative link in the top-level and docs/ Markdown files resolves inside the repository.

A link names a file or folder of the repository; its `#anchor`, when it points into
a Markdown file, names a heading there, slugged the way GitHub does.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
MARKDOWN_FILES = sorted([*ROOT.glob("*.md"), *(ROOT / "docs").rglob("*.md")])

_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE_CODE = re.compile(r"(`+).*?\1")
# [text](target "title") and ![alt](target); the target stops at a space or `)`.
_INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+[^)]*)?\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def _prose_lines(text: str) -> list[str]:
    """The file's lines outside fenced code blocks, inline code blanked out."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(_INLINE_CODE.sub("", line))
    return lines


def links(text: str) -> list[str]:
    found: list[str] = []
    for line in _prose_lines(text):
        found.extend(match.group(1) for match in _INLINE_LINK.finditer(line))
        reference = _REFERENCE.match(line)
        if reference:
            found.append(reference.group(1))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").lower()
    kept = "".join(
        char
        for char in text
        if char in " -_"
        or unicodedata.category(char)[0] in "LN"
        or unicodedata.category(char) == "Mn"
    )
    return kept.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's anchor; a repeated heading gets -1, -2, … as on GitHub."""
    seen: Counter[str] = Counter()
    result: set[str] = set()
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        heading = None if fenced else _HEADING.match(line)
        if heading is None:
            continue
        base = slug(heading.group(2))
        result.add(base if seen[base] == 0 else f"{base}-{seen[base]}")
        seen[base] += 1
    return result


def broken_links(source: Path, root: Path = ROOT) -> list[str]:
    """The links of `source` that do not resolve inside `root`, each with the reason."""
    broken = []
    for link in links(source.read_text(encoding="utf-8")):
        if not link or _SCHEME.match(link) or link.startswith("//"):
            continue  # a web address or a mail link: not the repository's to check
        path_part, _, anchor = link.partition("#")
        target = (source.parent / unquote(path_part)).resolve() if path_part else source
        if not target.is_relative_to(root):
            broken.append(f"{link}: points outside the repository")
        elif not target.exists():
            broken.append(f"{link}: {target.relative_to(root)} does not exist")
        elif anchor and target.suffix == ".md" and not _has_anchor(target, anchor):
            broken.append(f"{link}: no heading #{anchor} in {target.relative_to(root)}")
    return broken


def _has_anchor(target: Path, anchor: str) -> bool:
    return target.is_dir() or unquote(anchor).lower() in anchors(target.read_text(encoding="utf-8"))


@pytest.mark.parametrize("source", MARKDOWN_FILES, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_resolves(source: Path) -> None:
    broken = broken_links(source)
    assert not broken, f"{source.relative_to(ROOT)} has links that do not resolve:\n" + "\n".join(
        broken
    )


def test_the_files_are_found() -> None:
    names = {str(path.relative_to(ROOT)) for path in MARKDOWN_FILES}
    assert {"README.md", "docs/protocol.md", "docs/architecture.md"} <= names


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("What the coordinator guarantees", "what-the-coordinator-guarantees"),
        ("`POST /v1/bots/register`", "post-v1botsregister"),
        ("Bot ⇄ coordinator (bot token)", "bot--coordinator-bot-token"),
        ("Reports: queue, delivery, outbox", "reports-queue-delivery-outbox"),
        ("snake_case and 10× Celery", "snake_case-and-10-celery"),
    ],
)
def test_slugs_follow_github(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


def test_repeated_headings_are_numbered() -> None:
    assert anchors("# A\n## A\n```\n# not a heading\n```\n### A\n") == {"a", "a-1", "a-2"}


def test_links_in_code_are_not_links() -> None:
    text = "[ok](README.md) `[no](missing.md)`\n```\n[no](missing.md)\n```\n[ref]: docs/x.md\n"
    assert links(text) == ["README.md", "docs/x.md"]


def test_a_broken_link_and_anchor_are_named(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Here\n", encoding="utf-8")
    source = tmp_path / "README.md"
    source.write_text(
        "[a](other.md#here) [b](other.md#there) [c](gone.md) [d](#top)\n"
        "[e](https://x.org/y) [f](../x.md)\n# Top\n",
        encoding="utf-8",
    )
    assert broken_links(source, root=tmp_path) == [
        "other.md#there: no heading #there in other.md",
        "gone.md: gone.md does not exist",
        "../x.md: points outside the repository",
    ]
