"""deploy/prometheus-alerts.yml asks only for metrics the coordinator and the bot export."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "deploy" / "prometheus-alerts.yml"
# Where the metrics are defined: each name appears there in quotes.
SOURCES = (ROOT / "coordinator" / "metrics.py", ROOT / "bot" / "agent" / "metrics.py")
_NAME = re.compile(r"\bbotfleet_[a-z_]+\b")
_SUFFIX = re.compile(r"_(total|bucket|sum|count|created)$")


def defined_metrics() -> set[str]:
    names: set[str] = set()
    for source in SOURCES:
        names.update(re.findall(r'"(botfleet_[a-z_]+)"', source.read_text(encoding="utf-8")))
    return names


def rules() -> list[dict[str, object]]:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_every_alert_names_real_metrics() -> None:
    defined = defined_metrics()
    assert {"botfleet_store_up", "botfleet_bot_state"} <= defined
    for rule in rules():
        expr = str(rule["expr"])
        for name in _NAME.findall(expr):
            assert name in defined or _SUFFIX.sub("", name) in defined, f"{rule['alert']}: {name}"


def test_every_alert_is_named_and_explained() -> None:
    found = rules()
    assert len(found) >= 8
    for rule in found:
        assert str(rule["alert"]).startswith("Botfleet")
        annotations = rule["annotations"]
        assert isinstance(annotations, dict) and annotations["summary"]
