"""Labels: what a bot declares it has (`gpu=a100`) and what a job requires of the bot
it runs on. The wire types with their bounds, and the one matching rule every side
shares (the store's SQL implements the same rule inside the claim)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated

import msgspec

# A bot declares at most this many labels; a job requires at most this many keys, each
# of at most this many allowed values. Small: the claim checks them per job.
MAX_LABELS = 32
MAX_REQUIREMENTS = 8
MAX_REQUIRED_VALUES = 16

LabelKey = Annotated[
    str, msgspec.Meta(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9_./-]*$")
]
# No whitespace, `,` or `=`: a value must survive `BOT_LABELS="k=v,k2=v2"`.
LabelValue = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[^\s,=]+$")]
LabelValues = Annotated[
    list[LabelValue], msgspec.Meta(min_length=1, max_length=MAX_REQUIRED_VALUES)
]
Labels = Annotated[dict[LabelKey, LabelValue], msgspec.Meta(max_length=MAX_LABELS)]
Requirements = Annotated[
    dict[LabelKey, LabelValue | LabelValues], msgspec.Meta(max_length=MAX_REQUIREMENTS)
]

Required = dict[str, list[str]]
"""Requirements in their stored form: every key maps to the values it allows."""


class LabelError(ValueError):
    """A `key=value` text that is not a label."""


_KEY_CHECK = msgspec.json.Decoder(LabelKey)
_VALUE_CHECK = msgspec.json.Decoder(LabelValue)


def parse_label(text: str) -> tuple[str, str]:
    """`gpu=a100` -> ("gpu", "a100"); LabelError for anything else."""
    key, equals, value = text.strip().partition("=")
    key, value = key.strip(), value.strip()
    if not equals or not key or not value:
        raise LabelError(f"{text.strip()!r} is not key=value")
    try:
        _KEY_CHECK.decode(msgspec.json.encode(key))
    except msgspec.ValidationError:
        raise LabelError(
            f"label key {key!r} must be 1-63 letters, digits, '_', '.', '/' or '-'"
        ) from None
    try:
        _VALUE_CHECK.decode(msgspec.json.encode(value))
    except msgspec.ValidationError:
        raise LabelError(
            f"label value {value!r} must be 1-100 characters without spaces, ',' or '='"
        ) from None
    return key, value


def parse_labels(items: Iterable[str], limit: int = MAX_LABELS) -> dict[str, str]:
    """`["gpu=a100", "region=eu"]` -> a mapping; a key given twice or more than `limit`
    labels is a LabelError too."""
    labels: dict[str, str] = {}
    for item in items:
        key, value = parse_label(item)
        if key in labels:
            raise LabelError(f"label {key!r} is given twice")
        labels[key] = value
    if len(labels) > limit:
        raise LabelError(f"{len(labels)} labels, at most {limit}")
    return labels


def parse_requirements(items: Iterable[str]) -> Required:
    """`["gpu=a100", "gpu=h100", "region=eu"]` -> {"gpu": ["a100", "h100"], "region":
    ["eu"]}: a key given again adds an allowed value."""
    required: Required = {}
    for item in items:
        key, value = parse_label(item)
        values = required.setdefault(key, [])
        if value not in values:
            values.append(value)
    if len(required) > MAX_REQUIREMENTS:
        raise LabelError(f"{len(required)} required keys, at most {MAX_REQUIREMENTS}")
    for key, values in required.items():
        if len(values) > MAX_REQUIRED_VALUES:
            raise LabelError(f"{len(values)} values for {key!r}, at most {MAX_REQUIRED_VALUES}")
    return required


def normalised(requires: Mapping[str, str | Sequence[str]] | None) -> Required | None:
    """Every key with the list of values it allows, keys sorted, repeats dropped; None
    for no requirement (the common case, which the claim keeps on its fast path)."""
    if not requires:
        return None
    required: Required = {}
    for key in sorted(requires):
        value = requires[key]
        values = [value] if isinstance(value, str) else list(value)
        required[key] = list(dict.fromkeys(values))
    return required


def matches(labels: Mapping[str, str], required: Mapping[str, Sequence[str]] | None) -> bool:
    """Whether a bot with `labels` may run a job requiring `required`: every required
    key is among the labels with one of the allowed values."""
    if not required:
        return True
    return all(labels.get(key) in values for key, values in required.items())


def describe_requirement(key: str, values: Sequence[str]) -> str:
    """`gpu=a100`, or `gpu=a100|h100` for a choice."""
    return f"{key}={'|'.join(values)}"
