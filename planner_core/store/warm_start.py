"""Warm-start reads: what a (re)started planner needs to carry on where the last one stopped -
observed history for the predictors, their saved state, recent burst patterns, the targets the
scale-down stabiliser must remember, and the scaling requests a crash left without an outcome."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, not_, select

from planner_core.records import SERIES, Replicas
from planner_core.state import CycleState, StateQuery
from planner_core.store import postgres
from planner_core.store.core import StoreCore
from planner_core.store.rows import ACT, DEC, DEP, OBS, PST, RUN, aware, integer


@dataclass(frozen=True)
class PendingAction:
    """A scaling request the database knows of but whose outcome it never heard.

    ``kind`` is ``"pending"`` (action row written, connector outcome never recorded) or
    ``"not_requested"`` (a scale decision committed by a run that died before requesting it)."""

    kind: str
    deployment_id: int
    run_id: int
    decision_id: int
    action_id: int | None
    connector: str | None
    targets: Replicas
    decided_at: datetime
    requested_at: datetime | None
    run_status: str


class WarmStartReads(StoreCore):
    """The reads of a planner's start."""

    def load_cycle_state(self, query: StateQuery) -> CycleState:
        """What the deployment's last cycles carried over, as of ``query.now``: rebuilt from the
        rows they wrote (burst patterns, request counts, sizing targets) and the saved predictor
        state, in one read transaction."""
        dep = query.deployment_id
        bursts = self.recent_arrival_counts(dep, query.burst_since, query.now)
        idle_since = query.idle_since
        counts = (
            [v for _, v in self.load_histories(dep, ("num_req",), since=idle_since)["num_req"]]
            if idle_since is not None
            else []
        )
        stabilizer_since = query.stabilizer_since
        targets = self.recent_targets(dep, stabilizer_since, query.now) if stabilizer_since is not None else []
        saved = {series: self.load_predictor_state(dep, series, query.predictor) for series in SERIES}
        return CycleState.from_rows(
            interval_s=query.interval_s,
            recent_bursts=bursts,
            recent_num_req=counts,
            stabilizer_recent=targets,
            predictor_state={k: v for k, v in saved.items() if v is not None} or None,
        )

    def deployments_with_predictor_state(self, predictor: str) -> list[tuple[int, str, str]]:
        """(deployment id, namespace, name) of every deployment with a saved ``predictor`` state."""
        q = (
            select(DEP.c.id, DEP.c.namespace, DEP.c.name)
            .where(DEP.c.id.in_(select(PST.c.deployment_id).where(PST.c.predictor == predictor)))
            .order_by(DEP.c.namespace, DEP.c.name)
        )
        with self.engine.connect() as conn:
            return [(int(i), str(ns), str(n)) for i, ns, n in conn.execute(q)]

    def load_histories(
        self,
        deployment_id: int,
        series: Sequence[str] = SERIES,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> dict[str, list[tuple[float, float | None]]]:
        """Observed ``series`` of a deployment, ``(window_end epoch s, value)`` oldest first, in one query."""
        for name in series:
            if name not in SERIES:
                raise ValueError(f"unknown series {name!r}; choose from {', '.join(SERIES)}")
        if self.dialect == "postgresql":
            with self.engine.connect() as conn:
                return postgres.load_histories(conn, deployment_id, series, since, limit)
        cols = [OBS.c[name] for name in series]
        t = func.round(self._epoch(OBS.c.window_end), 3).label("t")
        q = select(t, *cols).where(OBS.c.deployment_id == deployment_id)
        if since is not None:
            q = q.where(OBS.c.window_end >= aware(since, "since"))
        newest_first = limit is not None  # the latest ``limit`` points, returned oldest first
        q = q.order_by(OBS.c.window_end.desc()).limit(int(limit or 0)) if newest_first else q.order_by(OBS.c.window_end)
        with self.engine.connect() as conn:
            result = conn.execute(q)
            # The driver's plain tuples, not SQLAlchemy ``Row`` objects (no column here has a
            # result processor): tuples of floats drop out of the garbage collector's tracking
            # at its first pass, so a week of history does not promote 10,000 objects into
            # the oldest generation (whose collections walk the whole heap) on every call.
            rows: list[tuple[Any, ...]] = result.cursor.fetchall()  # type: ignore[assignment]
            result.close()
        if newest_first:
            rows.reverse()
        columns = list(zip(*rows, strict=True)) if rows else [()] * (len(series) + 1)
        return {name: list(zip(columns[0], columns[i], strict=True)) for i, name in enumerate(series, start=1)}

    def load_predictor_state(self, deployment_id: int, series: str, predictor: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            raw = conn.execute(
                select(PST.c.state_json).where(
                    PST.c.deployment_id == deployment_id, PST.c.series == series, PST.c.predictor == predictor
                )
            ).scalar()
        return None if raw is None else json.loads(raw)

    def recent_arrival_counts(
        self, deployment_id: int, since: datetime, before: datetime
    ) -> list[tuple[tuple[int, ...], float]]:
        """Burst patterns ``(arrival_counts, arrival_window_s)`` of the observations whose window
        ended in ``[since, before)``, oldest first (observations without a pattern left out)."""
        q = (
            select(OBS.c.arrival_counts, OBS.c.arrival_window_s)
            .where(
                OBS.c.deployment_id == deployment_id,
                OBS.c.window_end >= aware(since, "since"),
                OBS.c.window_end < aware(before, "before"),
                OBS.c.arrival_counts.is_not(None),
            )
            .order_by(OBS.c.window_end)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [(tuple(int(c) for c in counts), float(window or 1.0)) for counts, window in rows if counts]

    def recent_targets(
        self, deployment_id: int, since: datetime, before: datetime
    ) -> list[tuple[datetime, int | None, int | None]]:
        """``(decided_at, prefill, decode)`` the sizing recommended in ``[since, before)``, oldest
        first: the targets *before* scale-down stabilisation and the GPU budget (what a restarted
        stabiliser must remember: the decision's ``*_replicas_after_cap``), from ``scale``
        decisions only."""
        q = (
            select(DEC.c.decided_at, DEC.c.prefill_replicas_after_cap, DEC.c.decode_replicas_after_cap)
            .where(
                DEC.c.deployment_id == deployment_id,
                DEC.c.decided_at >= aware(since, "since"),
                DEC.c.decided_at < aware(before, "before"),
                DEC.c.action == "scale",
            )
            .order_by(DEC.c.decided_at, DEC.c.id)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [(aware(at, "decided_at"), integer(prefill), integer(decode)) for at, prefill, decode in rows]

    def pending_actions(self, deployment_id: int, exclude_run_id: int | None = None) -> list[PendingAction]:
        """Scaling requests whose outcome was never recorded (oldest first)."""
        out: list[PendingAction] = []
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(ACT, DEC.c.run_id, DEC.c.decided_at, RUN.c.status.label("run_status"))
                .join(DEC, DEC.c.id == ACT.c.decision_id)
                .join(RUN, RUN.c.id == DEC.c.run_id)
                .where(ACT.c.deployment_id == deployment_id, ACT.c.outcome == "pending")
                .order_by(ACT.c.requested_at, ACT.c.id)
            ).all()
            for r in rows:
                out.append(
                    PendingAction(
                        "pending",
                        deployment_id,
                        r.run_id,
                        r.decision_id,
                        r.id,
                        r.connector,
                        Replicas(r.target_prefill, r.target_decode),
                        r.decided_at,
                        r.requested_at,
                        r.run_status,
                    )
                )
            has_action = select(ACT.c.id).where(ACT.c.decision_id == DEC.c.id).exists()
            q = (
                select(
                    DEC.c.id,
                    DEC.c.run_id,
                    DEC.c.decided_at,
                    DEC.c.prefill_replicas,
                    DEC.c.decode_replicas,
                    RUN.c.status,
                )
                .join(RUN, RUN.c.id == DEC.c.run_id)
                .where(
                    RUN.c.deployment_id == deployment_id,
                    RUN.c.status == "running",
                    DEC.c.action == "scale",
                    DEC.c.dry_run.is_(False),
                    not_(has_action),
                )
                .order_by(DEC.c.decided_at, DEC.c.id)
            )
            if exclude_run_id is not None:
                q = q.where(RUN.c.id != exclude_run_id)
            for r in conn.execute(q).all():
                out.append(
                    PendingAction(
                        "not_requested",
                        deployment_id,
                        r.run_id,
                        r.id,
                        None,
                        None,
                        Replicas(r.prefill_replicas, r.decode_replicas),
                        r.decided_at,
                        None,
                        r.status,
                    )
                )
        return out
