"""Tables and values: the table handles, how Python values are stored, and the row builders of
the cycle records (shared by the writes and the store benchmark's bulk fill)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table

from planner_core.records import Decision, Observation, Replicas, SeriesForecast
from planner_core.store.models import (
    DecisionRow,
    Deployment,
    ObservationRow,
    PlannerConfigRow,
    PlannerRun,
    PredictionRow,
    PredictorStateRow,
    ScalingActionRow,
)

DEP: Table = Deployment.__table__  # type: ignore[assignment]
CFG: Table = PlannerConfigRow.__table__  # type: ignore[assignment]
RUN: Table = PlannerRun.__table__  # type: ignore[assignment]
OBS: Table = ObservationRow.__table__  # type: ignore[assignment]
PRED: Table = PredictionRow.__table__  # type: ignore[assignment]
DEC: Table = DecisionRow.__table__  # type: ignore[assignment]
ACT: Table = ScalingActionRow.__table__  # type: ignore[assignment]
PST: Table = PredictorStateRow.__table__  # type: ignore[assignment]

# The ``decisions`` columns filled from :meth:`Decision.to_dict` (the others come from the run).
DECISION_COLUMNS = [
    c.name for c in DEC.columns if c.name not in ("id", "run_id", "deployment_id", "decided_at", "dry_run")
]


def aware(value: datetime, name: str = "timestamp") -> datetime:
    """``value`` in UTC; a naive datetime is refused (a replay's clock is not the wall clock)."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name}: expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name}: {value!r} is naive; pass a timezone-aware UTC datetime")
    return value.astimezone(UTC)


def num(value: Any) -> float | None:
    """Floats as stored: None and NaN -> NULL (SQLite cannot store NaN); +-inf kept."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def integer(value: Any) -> int | None:
    return None if value is None else int(value)


def jsonable(value: Any) -> Any:
    """JSON both databases accept: non-finite floats -> None, numpy scalars/arrays -> Python."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return jsonable(value.tolist())
    if hasattr(value, "value") and type(value).__module__ != "builtins":  # enums
        return jsonable(value.value)
    return value


def observation_values(obs: Observation, run_id: int, deployment_id: int) -> dict[str, Any]:
    current = obs.current or Replicas(None, None)
    return {
        "run_id": run_id,
        "deployment_id": deployment_id,
        "window_start": aware(obs.window_start, "window_start"),
        "window_end": aware(obs.window_end, "window_end"),
        "num_req": num(obs.num_req),
        "ttft_ms": num(obs.ttft_ms),
        "itl_ms": num(obs.itl_ms),
        "isl": num(obs.isl),
        "osl": num(obs.osl),
        "request_duration_s": num(obs.request_duration_s),
        "queued_requests": num(obs.queued_requests),
        "prefill_replicas": integer(current.prefill),
        "decode_replicas": integer(current.decode),
        "quality": obs.quality,
        "error": obs.error,
        "arrival_counts": None if obs.arrival_counts is None else [int(c) for c in obs.arrival_counts],
        "arrival_window_s": None if obs.arrival_counts is None else num(obs.arrival_window_s),
        "sample_time": None if obs.sample_time is None else aware(obs.sample_time, "sample_time"),
    }


def prediction_values(forecasts: Mapping[str, SeriesForecast], run_id: int) -> list[dict[str, Any]]:
    return [
        {
            "run_id": run_id,
            "series": series,
            "predictor": f.predictor,
            "value": num(f.value),
            "upper": num(f.upper),
            "quantile": num(f.quantile),
            "horizon": int(f.horizon),
        }
        for series, f in forecasts.items()
    ]


def decision_values(
    decision: Decision, run_id: int, deployment_id: int, decided_at: datetime, dry_run: bool
) -> dict[str, Any]:
    d = decision.to_dict()
    values: dict[str, Any] = {
        "run_id": run_id,
        "deployment_id": deployment_id,
        "decided_at": decided_at,
        "dry_run": bool(dry_run),
    }
    for name in DECISION_COLUMNS:
        value = d.get(name)
        if name == "details":
            values[name] = jsonable(value or {})
        elif isinstance(value, bool) or value is None or isinstance(value, str):
            values[name] = value
        elif isinstance(value, float):
            values[name] = num(value)
        else:
            values[name] = value
    return values


def decision_from_row(row: Mapping[str, Any]) -> Decision:
    """Rebuild a :class:`Decision` from a ``decisions`` row (NaN came back as None)."""
    kwargs = {name: row[name] for name in Decision.field_names() if name in row}
    kwargs["details"] = dict(row.get("details") or {})
    for name in ("decode_sla_reachable",):
        if kwargs.get(name) is not None:
            kwargs[name] = bool(kwargs[name])
    for name in ("budget_limited", "budget_exceeded", "scale_down_limited"):
        kwargs[name] = bool(kwargs[name])
    return Decision(**kwargs)
