"""One cycle's outcome as rows and text, for the Prefect artifacts, ``run-once`` and logs.

Read from the :class:`~planner_core.cycle.CycleResult`; nothing is recomputed.
"""

from __future__ import annotations

import math
from typing import Any

from planner_core.cycle import CycleResult
from planner_core.records import is_missing


def _num(value: Any, digits: int = 1) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float):
        return round(value, digits)
    return value


def decision_rows(result: CycleResult) -> list[dict[str, Any]]:
    """The decision as a table: one row per quantity, observed / predicted / before / after."""
    obs, forecast, decision = result.observation, result.forecast, result.decision
    usable = forecast is not None and forecast.is_usable()
    rows: list[dict[str, Any]] = []
    for name, unit in (("num_req", "requests"), ("isl", "tokens"), ("osl", "tokens")):
        rows.append(
            {
                "quantity": f"{name} ({unit})",
                "observed": _num(getattr(obs, name, None)) if obs else None,
                "predicted": _num(getattr(forecast, name)) if usable and forecast else None,
                "predicted_upper": _num(getattr(forecast, f"{name}_upper")) if usable and forecast else None,
                "before": None,
                "after": None,
            }
        )
    for name in ("ttft_ms", "itl_ms"):
        rows.append(
            {
                "quantity": name,
                "observed": _num(getattr(obs, name, None)) if obs else None,
                "predicted": None,
                "predicted_upper": None,
                "before": None,
                "after": getattr(decision, f"{name[:-3]}_sla_ms", None) if decision else None,
            }
        )
    rows[-2]["quantity"], rows[-1]["quantity"] = "ttft_ms (after = SLA)", "itl_ms (after = SLA)"
    current = obs.current if obs else None
    for pool in ("prefill", "decode"):
        rows.append(
            {
                "quantity": f"{pool} replicas",
                "observed": None,
                "predicted": None,
                "predicted_upper": None,
                "before": getattr(current, pool, None) if current else None,
                "after": getattr(decision, f"{pool}_replicas", None) if decision else None,
            }
        )
    return rows


def row_ids(result: CycleResult) -> dict[str, int | None]:
    """The SQL rows this cycle wrote (``planner_runs``, ``observations``, ``decisions``, ``scaling_actions``)."""
    return {
        "planner_runs.id": result.run_id,
        "observations.id": result.observation_id,
        "decisions.id": result.decision_id,
        "scaling_actions.id": result.action_id,
    }


def headline(deployment: str, result: CycleResult) -> str:
    """One line: what the cycle did and why."""
    decision = result.decision
    window = f"{result.window_start:%H:%M:%S}-{result.window_end:%H:%M:%S} UTC"
    if result.status == "skipped_locked":
        return f"{deployment} {window}: skipped, another run is planning this deployment ({result.error})"
    if decision is None:
        return f"{deployment} {window}: {result.status}" + (f" ({result.error})" if result.error else "")
    before = result.observation.current if result.observation else None
    change = (
        f"prefill {getattr(before, 'prefill', None)} -> {decision.prefill_replicas}, "
        f"decode {getattr(before, 'decode', None)} -> {decision.decode_replicas}"
    )
    outcome = f", connector: {result.outcome.outcome}" if result.outcome else ""
    error = f", error: {result.error}" if result.error else ""
    return f"{deployment} {window}: {result.status}, {decision.action} ({change}){outcome}{error}; {decision.reason}"


def markdown(deployment: str, result: CycleResult) -> str:
    """The artifact's description: the headline, the reason and the SQL row ids."""
    lines = [f"**{headline(deployment, result)}**", ""]
    ids = ", ".join(f"`{k}` = {v}" for k, v in row_ids(result).items() if v is not None)
    if ids:
        lines.append(f"SQL rows: {ids}")
    for note in result.notes:
        lines.append(f"- {note}")
    obs = result.observation
    if obs is not None and obs.quality != "ok":
        lines.append(f"Observation quality: {obs.quality}" + (f" ({obs.error})" if obs.error else ""))
    if obs is not None and is_missing(obs.num_req):
        lines.append("No load observed: the replicas are held.")
    return "\n".join(lines)


def as_dict(deployment: str, result: CycleResult) -> dict[str, Any]:
    """A small JSON-able summary (the flow's return value, ``run-once --json``)."""
    decision = result.decision
    return {
        "deployment": deployment,
        "status": result.status,
        "window_end": result.window_end.isoformat(),
        "action": decision.action if decision else None,
        "prefill_replicas": decision.prefill_replicas if decision else None,
        "decode_replicas": decision.decode_replicas if decision else None,
        "reason": decision.reason if decision else None,
        "outcome": result.outcome.outcome if result.outcome else None,
        "error": result.error,
        "run_id": result.run_id,
        "observation_id": result.observation_id,
        "decision_id": result.decision_id,
        "action_id": result.action_id,
    }
