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


# An aggregation, with the labels it keeps when it has a `by (...)`: `max by (limit) (`.
_AGGREGATION = re.compile(r"\b(?:sum|max|min|avg|count)\s*(?:by\s*\(([^)]*)\)\s*)?\(")
_LABEL_USED = re.compile(r"\$labels\.([a-z_]+)")


def _labels(grouping: str) -> set[str]:
    return {name.strip() for name in grouping.split(",") if name.strip()}


def test_summaries_name_only_labels_the_expression_keeps() -> None:
    for rule in rules():
        annotations = rule["annotations"]
        assert isinstance(annotations, dict)
        used = set(_LABEL_USED.findall(str(annotations["summary"])))
        groupings = _AGGREGATION.findall(str(rule["expr"]))
        if not groupings:
            continue  # no aggregation: every label of the series is kept
        kept = set.intersection(*(_labels(grouping) for grouping in groupings))
        assert used <= kept, f"{rule['alert']}: {used - kept} dropped by the aggregation"


def test_every_alert_is_in_the_operators_table() -> None:
    operating = (ROOT / "docs" / "operating.md").read_text(encoding="utf-8")
    for rule in rules():
        assert f"`{rule['alert']}`" in operating, rule["alert"]


def test_limits_and_prefetch_have_alerts() -> None:
    exprs = {str(rule["alert"]): str(rule["expr"]) for rule in rules()}
    assert "botfleet_limit_held_back_jobs" in exprs["BotfleetLimitStuck"]
    assert "botfleet_limit_starts_per_second" in exprs["BotfleetLimitStuck"]
    assert "botfleet_jobs_released_total" in exprs["BotfleetPrefetchGivenBack"]
