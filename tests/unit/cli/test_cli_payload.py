"""key=value and --payload parsing for `botfleet submit`."""

from __future__ import annotations

from pathlib import Path

import pytest

from botfleet.cli.errors import UsageError
from botfleet.cli.payload import build_payload, parse_pairs, parse_value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", 1),
        ("-2.5", -2.5),
        ("true", True),
        ("null", None),
        ("[1, 2]", [1, 2]),
        ('{"x": 1}', {"x": 1}),
        ('"1"', "1"),
        ("seven", "seven"),
        ("", ""),
        ("hello world", "hello world"),
        ("1x", "1x"),
    ],
)
def test_a_value_is_json_when_it_parses_else_a_string(text: str, value: object) -> None:
    assert parse_value(text) == value


def test_pairs_become_a_payload() -> None:
    assert parse_pairs(["a=1", "b=2", "name=bob", "expr=a=b"]) == {
        "a": 1,
        "b": 2,
        "name": "bob",
        "expr": "a=b",
    }


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (["a"], "write key=value"),
        (["=1"], "key before '=' is empty"),
        (["a=1", "a=2"], "given twice"),
    ],
)
def test_bad_pairs_are_usage_errors(pairs: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_pairs(pairs)


def test_payload_json_must_be_an_object() -> None:
    assert build_payload([], '{"a": 1, "b": [2]}') == {"a": 1, "b": [2]}
    with pytest.raises(UsageError, match="JSON object"):
        build_payload([], "[1, 2]")
    with pytest.raises(UsageError, match="not valid JSON"):
        build_payload([], "{a: 1}")


def test_payload_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "job.json"
    path.write_text('{"a": 3}', encoding="utf-8")
    assert build_payload([], f"@{path}") == {"a": 3}
    with pytest.raises(UsageError, match="cannot read"):
        build_payload([], f"@{tmp_path / 'missing.json'}")


def test_pairs_and_payload_json_together_are_refused() -> None:
    with pytest.raises(UsageError, match="not both"):
        build_payload(["a=1"], '{"b": 2}')


def test_no_fields_is_an_empty_payload() -> None:
    assert build_payload([], None) == {}
