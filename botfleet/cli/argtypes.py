"""argparse `type=` converters whose errors read well (`--count: must be at least 1`)."""

from __future__ import annotations

import argparse
import re
from typing import TypeVar

from botfleet.protocol.labels import LabelError, parse_label

N = TypeVar("N", int, float)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}
NEVER = "never"


def positive_int(text: str) -> int:
    value = _number(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float, "a number")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text, float, "a number")
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def _number(text: str, kind: type[N], what: str) -> N:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, not {text!r}") from None


def duration(text: str) -> float:
    """Seconds from `500ms`, `30s`, `5m`, `2h`, `7d` or a bare number of seconds; more than 0."""
    match = _DURATION.match(text.lower())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"must be a duration such as 30s, 5m, 1h or 7d, not {text!r}"
        )
    seconds = float(match.group(1)) * _UNIT_S[match.group(2) or "s"]
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return seconds


def duration_or_never(text: str) -> float | None:
    """A `duration`, or None for `never`."""
    return None if text.strip().lower() == NEVER else duration(text)


def label_pair(text: str) -> tuple[str, str]:
    """`gpu=a100` -> ("gpu", "a100")."""
    try:
        return parse_label(text)
    except LabelError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
