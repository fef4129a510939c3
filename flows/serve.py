"""Serving the deployments of ``prefect.yaml`` from one process (``sla-planner serve``).

``prefect.yaml`` stays the one list of deployments: ``prefect deploy --all`` sends them to a
work pool, :func:`serve_prefect_file` serves the same ones without a pool.
"""

from __future__ import annotations

import copy
import importlib
from pathlib import Path
from typing import Any

import yaml


def load_prefect_file(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    if not isinstance(doc, dict) or not isinstance(doc.get("deployments"), list):
        raise ValueError(f"{path}: no `deployments:` list; is this the planner's prefect.yaml?")
    return doc


def with_interval(doc: dict[str, Any], interval_s: int) -> dict[str, Any]:
    """A copy of the project file whose schedules all run every ``interval_s`` seconds, and whose
    ``plan`` deployments plan intervals of that length (demos and end-to-end tests)."""
    out = copy.deepcopy(doc)
    for spec in out["deployments"]:
        if spec.get("schedules"):
            spec["schedules"] = [{"interval": interval_s}]
        settings = (spec.get("parameters") or {}).get("settings")
        if isinstance(settings, dict):
            settings["adjustment_interval_s"] = interval_s
    return out


def load_flow(entrypoint: str) -> Any:
    """``flows/plan.py:plan`` -> the flow object."""
    path, _, name = entrypoint.partition(":")
    module = path.removesuffix(".py").replace("/", ".")
    return getattr(importlib.import_module(module), name)


def runner_deployments(doc: dict[str, Any], only: list[str] | None = None) -> list[Any]:
    deployments = []
    for spec in doc["deployments"]:
        if only and spec["name"] not in only:
            continue
        schedules = spec.get("schedules") or []
        intervals = [s["interval"] for s in schedules if "interval" in s]
        deployments.append(
            load_flow(spec["entrypoint"]).to_deployment(
                name=spec["name"],
                description=spec.get("description"),
                tags=spec.get("tags"),
                parameters=spec.get("parameters") or {},
                interval=intervals or None,
                cron=[s["cron"] for s in schedules if "cron" in s] or None,
                concurrency_limit=spec.get("concurrency_limit"),
            )
        )
    if only and len(deployments) != len(set(only)):
        known = ", ".join(spec["name"] for spec in doc["deployments"])
        raise ValueError(f"--only: no such deployment in prefect.yaml (known: {known})")
    return deployments


def serve_deployments(deployments: list[Any]) -> int:
    """Register ``deployments`` and run their flow runs from this process until Ctrl-C."""
    from prefect import serve

    serve(*deployments)
    return 0
