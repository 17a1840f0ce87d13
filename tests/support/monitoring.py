"""What the monitoring profile's alert rules and dashboard ask of the fleet's metrics.

The expressions are read from the files the project ships (monitoring/alerts.yml, the Grafana
dashboard) and taken apart far enough to name, for each expression, the metrics it selects, the
labels its matchers name per metric, and the labels it groups or prints by. That is what a metric
renamed or a label dropped in the code would break without anyone noticing until the alert that
should have fired stays silent.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
RULES = MONITORING / "alerts.yml"
DASHBOARD = MONITORING / "grafana-dashboard.json"

# A metric the fleet names (or Prometheus's own `up`), with its matchers if any.
_SELECTOR = re.compile(r"\b(up|chronotick_[a-z0-9_]+)\b\s*(\{[^}]*\})?")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")
_LEGEND = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")
# Labels every scraped series has, or that an expression makes itself.
ADDED_BY_PROMETHEUS = frozenset({"instance", "job", "le"})


@dataclass(frozen=True)
class Expression:
    where: str  # the alert or panel it comes from
    text: str
    legend: str = ""

    def selectors(self) -> dict[str, frozenset[str]]:
        """metric -> the labels its matchers name (over every selector of it in the expression)."""
        found: dict[str, set[str]] = {}
        for name, braces in _SELECTOR.findall(self.text):
            found.setdefault(name, set()).update(_MATCHER.findall(braces or ""))
        return {name: frozenset(labels) for name, labels in found.items()}

    def grouped_by(self) -> frozenset[str]:
        """The labels it aggregates or joins by, and those its legend prints."""
        labels = {label.strip() for group in _GROUPING.findall(self.text) for label in group.split(",")}
        labels |= set(_LEGEND.findall(self.legend))
        return frozenset(label for label in labels if label)


def alert_rules() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard() -> dict[str, object]:
    return json.loads(DASHBOARD.read_text())


def expressions() -> list[Expression]:
    """Every PromQL expression of the alert rules and of the dashboard's panels."""
    found = [Expression(f"alert {rule['alert']}", str(rule["expr"])) for rule in alert_rules()]
    for panel in dashboard()["panels"]:
        for target in panel["targets"]:
            found.append(Expression(f"panel {panel['title']!r}", target["expr"], target.get("legendFormat", "")))
    return found
