"""A cycle row: one planning cycle as ``sla-planner history`` shows it, defined once.

:data:`CYCLE_FIELDS` is the one list of what a cycle row holds. The store's cycle query
(:meth:`~planner_core.store.reporting.HistoryReads.latest_cycles`) selects the ``source`` of
each field, the CSV of ``history --format csv`` has the ``export`` fields in this order, and
``view`` names the column of the ``v_decisions`` view (migration 0002) that holds the same
value - a test reads both and checks they agree.

A ``source`` is ``"<table>.<column>"`` over the cycle query's tables: ``run`` (planner_runs),
``obs`` (observations), ``pred`` (the horizon-1 forecasts: ``predictor`` and one column per
load series), ``dec`` (decisions) and ``act`` (scaling_actions); ``None`` for the fields
derived in Python (the deployment's name and namespace, the applied replicas).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CycleField:
    name: str
    source: str | None  # "<table>.<column>" of the cycle query; None: derived
    view: str | None  # the v_decisions column with the same value; None: not in the view
    export: bool = True  # a column of the history CSV


CYCLE_FIELDS: tuple[CycleField, ...] = (
    CycleField("run_id", "run.id", "run_id"),
    CycleField("namespace", None, "namespace", export=False),
    CycleField("deployment", None, "deployment"),
    CycleField("started_at", "run.started_at", "run_started_at"),
    CycleField("trigger", "run.trigger", "trigger"),
    CycleField("status", "run.status", "run_status"),
    CycleField("quality", "obs.quality", "observed_quality"),
    CycleField("observed_num_req", "obs.num_req", "observed_num_req"),
    CycleField("observed_isl", "obs.isl", "observed_isl"),
    CycleField("observed_osl", "obs.osl", "observed_osl"),
    CycleField("observed_ttft_ms", "obs.ttft_ms", "observed_ttft_ms"),
    CycleField("observed_itl_ms", "obs.itl_ms", "observed_itl_ms"),
    CycleField("predictor", "pred.predictor", None, export=False),
    CycleField("predicted_num_req", "pred.num_req", None),
    CycleField("predicted_isl", "pred.isl", None),
    CycleField("predicted_osl", "pred.osl", None),
    CycleField("current_prefill", "obs.prefill_replicas", "current_prefill"),
    CycleField("current_decode", "obs.decode_replicas", "current_decode"),
    CycleField("decision_id", "dec.id", "decision_id", export=False),
    CycleField("policy", "dec.policy", "policy", export=False),
    CycleField("decided_prefill", "dec.prefill_replicas", "prefill_replicas"),
    CycleField("decided_decode", "dec.decode_replicas", "decode_replicas"),
    CycleField("decided_gpus", "dec.total_gpus", "total_gpus", export=False),
    CycleField("action", "dec.action", "action"),
    CycleField("dry_run", "dec.dry_run", "dry_run"),
    CycleField("action_id", "act.id", "action_id", export=False),
    CycleField("action_outcome", "act.outcome", "action_outcome"),
    CycleField("requested_prefill", "act.target_prefill", "action_target_prefill", export=False),
    CycleField("requested_decode", "act.target_decode", "action_target_decode", export=False),
    CycleField("applied_prefill", None, None),
    CycleField("applied_decode", None, None),
    CycleField("action_error", "act.error", "action_error", export=False),
    CycleField("reason", "dec.reason", "reason"),
    CycleField("error", "run.error", None),
)

# The columns of ``history --format csv``, in order.
HISTORY_COLUMNS: tuple[str, ...] = tuple(f.name for f in CYCLE_FIELDS if f.export)

# The fields the cycle query selects, in its column order (after ``deployment_id``).
QUERIED_FIELDS: tuple[CycleField, ...] = tuple(f for f in CYCLE_FIELDS if f.source is not None)
