"""``sla-planner exporter``: the planner's own metrics read from the store on every scrape.

Under Prefect each cycle is a short process, so nothing in it lives long enough to be scraped.
This collector reads what the cycles wrote (the last cycle of every deployment, the GPU-hours
of every observed interval, the cycles by outcome and reason) and renders the same families as
:class:`~planner_core.metrics.planner_metrics.PlannerMetrics`. Read-only; one short transaction
per scrape.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import Metric
from sqlalchemy import func, select, true

from planner_core.metrics.planner_metrics import DeploymentMetrics, _finite, cycle_reason, render
from planner_core.store.models import DecisionRow, Deployment, ObservationRow, PlannerRun, ScalingActionRow

DEP = Deployment.__table__
RUN = PlannerRun.__table__
OBS = ObservationRow.__table__
DEC = DecisionRow.__table__
ACT = ScalingActionRow.__table__


class StoreCollector:
    """prometheus-client collector over a :class:`planner_core.store.Store`."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def snapshot(self, upto_run_id: int | None = None, deployment_id: int | None = None) -> list[DeploymentMetrics]:
        """The families' values now, or as they were right after run ``upto_run_id`` finished
        (what a scrape then would have read; the backfill uses it), for every deployment or
        only ``deployment_id``."""
        engine = self.store.engine
        out: dict[int, DeploymentMetrics] = {}
        upto = upto_run_id
        with engine.connect() as conn:
            deps = select(DEP.c.id, DEP.c.name, DEP.c.namespace, DEP.c.model)
            if deployment_id is not None:
                deps = deps.where(DEP.c.id == deployment_id)
            for dep_id, name, namespace, model in conn.execute(deps):
                out[int(dep_id)] = DeploymentMetrics(f"{namespace}/{name}", model or "")

            gpu_seconds = (
                func.coalesce(OBS.c.prefill_replicas, 0) * DEC.c.prefill_engine_num_gpu
                + func.coalesce(OBS.c.decode_replicas, 0) * DEC.c.decode_engine_num_gpu
            ) * DEC.c.interval_s
            q = (
                select(OBS.c.deployment_id, func.sum(gpu_seconds))
                .select_from(OBS.join(DEC, DEC.c.run_id == OBS.c.run_id))
                .where(OBS.c.run_id <= upto if upto is not None else true())
                .group_by(OBS.c.deployment_id)
            )
            for dep_id, total in conn.execute(q):
                if int(dep_id) in out and total is not None:
                    out[int(dep_id)].gpu_hours = float(total) / 3600.0

            q = (
                select(RUN.c.deployment_id, RUN.c.status, OBS.c.quality, ACT.c.outcome, func.count())
                .select_from(
                    RUN.outerjoin(OBS, OBS.c.run_id == RUN.c.id)
                    .outerjoin(DEC, DEC.c.run_id == RUN.c.id)
                    .outerjoin(ACT, ACT.c.decision_id == DEC.c.id)
                )
                .where(RUN.c.status != "running", RUN.c.id <= upto if upto is not None else true())
                .group_by(RUN.c.deployment_id, RUN.c.status, OBS.c.quality, ACT.c.outcome)
            )
            for dep_id, status, quality, outcome, count in conn.execute(q):
                dep = out.get(int(dep_id))
                if dep is not None:
                    key = (str(status), cycle_reason(str(status), quality, outcome))
                    dep.cycles[key] = dep.cycles.get(key, 0.0) + float(count)

            # The last finished run of each deployment with what it observed and decided.
            last = (
                select(RUN.c.deployment_id, func.max(RUN.c.id).label("run_id"))
                .where(RUN.c.status != "running", RUN.c.id <= upto if upto is not None else true())
                .group_by(RUN.c.deployment_id)
                .subquery()
            )
            q = select(
                last.c.deployment_id,
                RUN.c.started_at,
                RUN.c.ended_at,
                OBS.c.window_end,
                OBS.c.prefill_replicas,
                OBS.c.decode_replicas,
                OBS.c.num_req,
                OBS.c.isl,
                OBS.c.osl,
                OBS.c.ttft_ms,
                OBS.c.itl_ms,
                DEC.c.id,
                DEC.c.prefill_replicas,
                DEC.c.decode_replicas,
                DEC.c.prefill_correction,
                DEC.c.decode_correction,
            ).select_from(
                last.join(RUN, RUN.c.id == last.c.run_id)
                .outerjoin(OBS, OBS.c.run_id == RUN.c.id)
                .outerjoin(DEC, DEC.c.run_id == RUN.c.id)
            )
            rows = conn.execute(q).all()
            predictions = self._predictions(conn, [int(r[11]) for r in rows if r[11] is not None])
        for row in rows:
            dep = out.get(int(row[0]))
            if dep is None:
                continue
            started, ended, window_end = row[1], row[2], row[3]
            g = dep.gauges
            g["planner_cycle_duration_seconds"] = (
                (ended - started).total_seconds() if started is not None and ended is not None else None
            )
            g["planner_last_cycle_timestamp_seconds"] = window_end.timestamp() if window_end is not None else None
            g["planner_current_replicas:prefill"] = _finite(row[4])
            g["planner_current_replicas:decode"] = _finite(row[5])
            g["planner_observed_requests"] = _finite(row[6])
            g["planner_observed_isl_tokens"] = _finite(row[7])
            g["planner_observed_osl_tokens"] = _finite(row[8])
            ttft, itl = _finite(row[9]), _finite(row[10])
            g["planner_observed_ttft_seconds"] = None if ttft is None else ttft / 1000.0
            g["planner_observed_itl_seconds"] = None if itl is None else itl / 1000.0
            g["planner_desired_replicas:prefill"] = _finite(row[12])
            g["planner_desired_replicas:decode"] = _finite(row[13])
            g["planner_correction_factor:prefill"] = _finite(row[14])
            g["planner_correction_factor:decode"] = _finite(row[15])
            pred = predictions.get(int(row[11])) if row[11] is not None else None
            for series, name in (
                ("num_req", "planner_predicted_requests"),
                ("isl", "planner_predicted_isl_tokens"),
                ("osl", "planner_predicted_osl_tokens"),
            ):
                g[name] = _finite(pred.get(series)) if pred else None
        return list(out.values())

    @staticmethod
    def _predictions(conn: Any, decision_ids: list[int]) -> dict[int, dict[str, float]]:
        if not decision_ids:
            return {}
        from planner_core.store.models import PredictionRow

        pred = PredictionRow.__table__
        q = (
            select(DEC.c.id, pred.c.series, pred.c.value)
            .select_from(DEC.join(pred, pred.c.run_id == DEC.c.run_id))
            .where(DEC.c.id.in_(decision_ids), pred.c.horizon == 1)
        )
        out: dict[int, dict[str, float]] = {}
        for dec_id, series, value in conn.execute(q):
            out.setdefault(int(dec_id), {})[str(series)] = value
        return out

    def collect(self) -> Iterator[Metric]:
        yield from render(self.snapshot())


def serve_store(store: Any, port: int, address: str = "127.0.0.1") -> tuple[Any, int]:
    """Serve the store's metrics on ``address:port`` (0 = a free port); returns (server, port)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store))
    server, _ = start_http_server(port, addr=address, registry=registry)
    return server, int(server.server_address[1])
