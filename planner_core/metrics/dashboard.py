"""The Grafana dashboard's panels as plain PromQL, for checking and previewing it without Grafana.

``deploy/grafana/sla-planner-dashboard.json`` is the dashboard users import. Grafana itself
cannot run here (it is AGPL-licensed and not packaged for this machine), so the tests evaluate
each panel's queries on a real Prometheus holding the planner's history, and
``scripts/dashboard_preview.py`` draws them in the dashboard's layout for the docs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "sla-planner-dashboard.json"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str  # Grafana's legendFormat, e.g. "current {{pool}} ({{deployment}})"


@dataclass(frozen=True)
class Panel:
    title: str
    kind: str  # "timeseries" | "stat"
    unit: str
    grid: tuple[int, int, int, int]  # x, y, w, h in Grafana's 24-column grid
    queries: tuple[Query, ...]


def load_panels(path: Path = DASHBOARD, variables: dict[str, str] | None = None) -> list[Panel]:
    """The panels of the dashboard at ``path`` with ``$name`` / ``${name}`` template variables
    replaced (default: every variable is Grafana's "All", the regex ``.*``)."""
    doc: dict[str, Any] = json.loads(path.read_text())
    names = [v["name"] for v in doc.get("templating", {}).get("list", []) if v.get("type") == "query"]
    values = {name: ".*" for name in names} | (variables or {})

    def substitute(expr: str) -> str:
        return re.sub(r"\$\{?(\w+)\}?", lambda m: values.get(m.group(1), m.group(0)), expr)

    panels = []
    for p in doc["panels"]:
        grid = p["gridPos"]
        panels.append(
            Panel(
                title=p["title"],
                kind=p["type"],
                unit=p.get("fieldConfig", {}).get("defaults", {}).get("unit", ""),
                grid=(grid["x"], grid["y"], grid["w"], grid["h"]),
                queries=tuple(Query(substitute(t["expr"]), t.get("legendFormat", "")) for t in p.get("targets", [])),
            )
        )
    return panels


def legend(fmt: str, labels: dict[str, str]) -> str:
    """Grafana's ``{{label}}`` legend format filled from a series' labels."""
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt) or str(labels)
