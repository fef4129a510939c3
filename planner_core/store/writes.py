"""Cycle writes: a planner run, its observation, forecasts, decision and scaling action, and the
predictor state saved for the next run.

Writes are audit-first: :meth:`CycleWrites.record_decision` has committed when it returns and
:meth:`CycleWrites.record_action_requested` commits a ``pending`` action before the connector is
called, so the database knows of every scaling request even if the planner dies mid-call
(:meth:`~planner_core.store.warm_start.WarmStartReads.pending_actions` reports what such a crash
left behind).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from planner_core.records import Decision, Observation, Replicas, ScalingOutcome, SeriesForecast
from planner_core.redaction import redact_config
from planner_core.state import CycleState
from planner_core.store import postgres
from planner_core.store.core import RunInfo, StoreCore
from planner_core.store.errors import StoreError
from planner_core.store.lock import CL
from planner_core.store.rows import (
    ACT,
    CFG,
    DEC,
    OBS,
    PRED,
    PST,
    RUN,
    aware,
    decision_values,
    integer,
    jsonable,
    observation_values,
    prediction_values,
)


class CycleWrites(StoreCore):
    """What one planning cycle writes, in the order it writes it."""

    # -- runs ------------------------------------------------------------------------------------
    def begin_run(
        self,
        deployment_id: int,
        trigger: str,
        config: Mapping[str, Any],
        started_at: datetime,
        flow_run_id: str | None = None,
        reason: str | None = None,
    ) -> int:
        """Insert a ``running`` planner run (committed) and return its id. ``reason``: why an
        operator started it (manual re-plans)."""
        started_at = aware(started_at, "started_at")
        config = redact_config(config)  # a credential in a URL setting is never stored
        if self.dialect == "postgresql":
            config_id = self._config_ids.get(_config_digest(jsonable(dict(config))))
            if config_id is not None:
                ins = _run_insert(deployment_id, trigger, config_id, started_at, flow_run_id, reason)
                run_id = postgres.begin_run(self, ins, deployment_id)
                self._runs[run_id] = RunInfo(deployment_id, started_at)
                return run_id
        with self._tx(durable=False) as conn:
            config_id = self._config_id(conn, config, started_at)
            run_id = conn.execute(
                _run_insert(deployment_id, trigger, config_id, started_at, flow_run_id, reason)
            ).scalar_one()
            lock = self._locks.get(deployment_id)
            if lock is not None:
                conn.execute(
                    update(CL)
                    .where(CL.c.deployment_id == deployment_id, CL.c.token == lock.token)
                    .values(**lock.bind_run_values(run_id, datetime.now(UTC)))
                )
        self._runs[run_id] = RunInfo(deployment_id, started_at)
        return int(run_id)

    def finish_run(self, run_id: int, status: str, ended_at: datetime, error: str | None = None) -> None:
        with self._single(durable=False) as conn:
            n = conn.execute(
                update(RUN)
                .where(RUN.c.id == run_id)
                .values(status=status, ended_at=aware(ended_at, "ended_at"), error=error)
            ).rowcount
        if n != 1:
            raise StoreError(f"unknown planner run {run_id}")
        self._runs.pop(run_id, None)

    def close_abandoned_runs(
        self,
        deployment_id: int,
        ended_at: datetime,
        exclude_run_id: int | None = None,
        status: str = "abandoned",
    ) -> int:
        """Mark runs still ``running`` (their process died) as ``abandoned``, and their scaling
        requests still ``pending`` (the connector's answer never came) as ``unknown``, in one
        transaction; call under the lock, after :meth:`pending_actions` has reported them."""
        dead = [RUN.c.deployment_id == deployment_id, RUN.c.status == "running"]
        if exclude_run_id is not None:
            dead.append(RUN.c.id != exclude_run_id)
        q = update(RUN).where(*dead)
        dead_runs = select(RUN.c.id).where(*dead)
        with self.engine.begin() as conn:
            conn.execute(
                update(ACT)
                .where(
                    ACT.c.outcome == "pending",
                    ACT.c.decision_id.in_(select(DEC.c.id).where(DEC.c.run_id.in_(dead_runs))),
                )
                .values(outcome="unknown", error="the planner stopped before the connector answered; check the cluster")
            )
            return int(
                conn.execute(
                    q.values(
                        status=status,
                        ended_at=aware(ended_at, "ended_at"),
                        error="the planner stopped before finishing this run",
                    )
                ).rowcount
            )

    # -- per-cycle records ---------------------------------------------------------------------
    def record_observation(self, run_id: int, obs: Observation) -> int:
        with self._single(durable=False) as conn:
            info = self._run_info(conn, run_id)
            values = observation_values(obs, run_id, info.deployment_id)
            return int(conn.execute(insert(OBS).values(values).returning(OBS.c.id)).scalar_one())

    def record_predictions(self, run_id: int, forecasts: Mapping[str, SeriesForecast]) -> None:
        if not forecasts:
            return
        with self._single(durable=False) as conn:
            self._run_info(conn, run_id)
            # one multi-row INSERT: one statement (atomic also in autocommit), one round trip
            conn.execute(insert(PRED).values(prediction_values(forecasts, run_id)))

    def record_decision(self, run_id: int, decision: Decision, dry_run: bool) -> int:
        """Insert the decision and COMMIT (durably: the WAL is flushed before this returns); returns its id."""
        with self._single(durable=True) as conn:
            info = self._run_info(conn, run_id)
            values = decision_values(decision, run_id, info.deployment_id, info.started_at, dry_run)
            dec_id = int(conn.execute(insert(DEC).values(values).returning(DEC.c.id)).scalar_one())
        if len(self._decisions) > 1024:
            self._decisions.clear()
        self._decisions[dec_id] = info.deployment_id
        return dec_id

    def record_action_requested(
        self, decision_id: int, connector: str, targets: Replicas, requested_at: datetime
    ) -> int:
        """Commit a ``pending`` scaling action (durably); call before the connector."""
        with self._single(durable=True) as conn:
            dep_id = self._decisions.get(decision_id)
            if dep_id is None:
                dep_id = conn.execute(select(DEC.c.deployment_id).where(DEC.c.id == decision_id)).scalar()
                if dep_id is None:
                    raise StoreError(f"unknown decision {decision_id}")
            action_id = conn.execute(
                insert(ACT)
                .values(
                    decision_id=decision_id,
                    deployment_id=dep_id,
                    connector=connector,
                    target_prefill=integer(targets.prefill),
                    target_decode=integer(targets.decode),
                    requested_at=aware(requested_at, "requested_at"),
                    outcome="pending",
                )
                .returning(ACT.c.id)
            ).scalar_one()
        self._decisions.pop(decision_id, None)
        return int(action_id)

    def record_action_outcome(self, action_id: int, outcome: ScalingOutcome) -> None:
        ack = aware(outcome.acknowledged_at, "acknowledged_at") if outcome.acknowledged_at else None
        with self._single(durable=False) as conn:
            n = conn.execute(
                update(ACT)
                .where(ACT.c.id == action_id)
                .values(outcome=outcome.outcome, acknowledged_at=ack, error=outcome.error)
            ).rowcount
        if n != 1:
            raise StoreError(f"unknown scaling action {action_id}")

    # -- predictor state -------------------------------------------------------------------------
    def save_predictor_state(
        self, deployment_id: int, series: str, predictor: str, state: Mapping[str, Any], updated_at: datetime
    ) -> None:
        payload = json.dumps(state, default=_state_default, sort_keys=True)
        values = {
            "deployment_id": deployment_id,
            "series": series,
            "predictor": predictor,
            "state_json": payload,
            "updated_at": aware(updated_at, "updated_at"),
        }
        ins = self._insert(PST).values(**values)
        ins = ins.on_conflict_do_update(
            index_elements=[PST.c.deployment_id, PST.c.series, PST.c.predictor],
            set_={"state_json": payload, "updated_at": values["updated_at"]},
        )
        with self._single(durable=False) as conn:
            conn.execute(ins)

    def save_cycle_state(self, deployment_id: int, state: CycleState, predictor: str, saved_at: datetime) -> None:
        """Keep the part of ``state`` the cycle's rows do not hold: the predictor's state."""
        for series, values in (state.predictor_state or {}).items():
            self.save_predictor_state(deployment_id, series, predictor, values, saved_at)

    # -- internals -------------------------------------------------------------------------------
    def _run_info(self, conn: Connection, run_id: int) -> RunInfo:
        info = self._runs.get(run_id)
        if info is None:
            row = conn.execute(select(RUN.c.deployment_id, RUN.c.started_at).where(RUN.c.id == run_id)).first()
            if row is None:
                raise StoreError(f"unknown planner run {run_id}")
            info = RunInfo(int(row.deployment_id), row.started_at)
            if len(self._runs) > 1024:
                self._runs.clear()
            self._runs[run_id] = info
        return info

    def _config_id(self, conn: Connection, config: Mapping[str, Any], seen_at: datetime) -> int:
        doc = jsonable(dict(config))
        digest = _config_digest(doc)
        cached = self._config_ids.get(digest)
        if cached is not None:
            return cached
        conn.execute(
            self._insert(CFG).values(sha256=digest, config=doc, first_seen_at=seen_at).on_conflict_do_nothing()
        )
        config_id = int(conn.execute(select(CFG.c.id).where(CFG.c.sha256 == digest)).scalar_one())
        self._config_ids[digest] = config_id
        return config_id


def _config_digest(doc: Any) -> str:
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _state_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"predictor state: {type(value).__name__} is not JSON-serialisable")


def _run_insert(
    deployment_id: int,
    trigger: str,
    config_id: int | None,
    started_at: datetime,
    flow_run_id: str | None,
    reason: str | None = None,
) -> Any:
    """INSERT of a new ``running`` run, returning its id (shared by both write paths)."""
    return (
        insert(RUN)
        .values(
            deployment_id=deployment_id,
            trigger=trigger,
            status="running",
            started_at=started_at,
            config_id=config_id,
            flow_run_id=flow_run_id,
            reason=reason,
        )
        .returning(RUN.c.id)
    )
