"""Turn `submit` arguments into job payloads: `a=1 b=x` or `--payload '{"a": 1}'`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from botfleet.cli.errors import UsageError


def parse_value(text: str) -> Any:
    """A value is JSON when it parses as JSON (`1`, `true`, `[1,2]`, `"1"`), else a string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_pairs(pairs: Sequence[str]) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(f"payload field {pair!r}: write key=value, e.g. a=1")
        key = key.strip()
        if not key:
            raise UsageError(f"payload field {pair!r}: the key before '=' is empty")
        if key in payload:
            raise UsageError(f"payload field {key!r} is given twice")
        payload[key] = parse_value(value)
    return payload


def parse_payload_json(text: str) -> dict[str, Any]:
    """`--payload`: a JSON object, or `@file.json` to read it from a file."""
    source = "--payload"
    if text.startswith("@"):
        path = Path(text[1:])
        source = f"--payload {text}"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{source}: cannot read {path}: {exc.strerror}") from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{source}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise UsageError(f"{source}: must be a JSON object like '{{\"a\": 1}}'")
    return value


def build_payload(pairs: Sequence[str], payload_json: str | None) -> dict[str, Any]:
    if payload_json is not None and pairs:
        raise UsageError("give the payload either as key=value fields or as --payload, not both")
    if payload_json is not None:
        return parse_payload_json(payload_json)
    return parse_pairs(pairs)
