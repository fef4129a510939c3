"""History and reporting: recent cycles as rows of :data:`~planner_core.store.cycle_row.CYCLE_FIELDS`
(``sla-planner history`` and its CSV / JSON output)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import BigInteger, Integer, and_, bindparam, func, select, true
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import aliased

from planner_core.records import SERIES, Observation, Replicas
from planner_core.store import postgres
from planner_core.store.core import StoreCore
from planner_core.store.cycle_row import CYCLE_FIELDS, QUERIED_FIELDS
from planner_core.store.rows import ACT, DEC, DEP, OBS, PRED, RUN, aware

# A query row is ``deployment_id`` and the queried fields; a cycle row adds the derived ones and
# puts them all in the order of CYCLE_FIELDS.
_KEYS = tuple(f.name for f in QUERIED_FIELDS)
_DERIVED = ("namespace", "deployment", "applied_prefill", "applied_decode")
_POSITION = {name: i for i, name in enumerate((*_KEYS, *_DERIVED))}
_NAMES = tuple(f.name for f in CYCLE_FIELDS)
assert set(_POSITION) == set(_NAMES), "every cycle field is queried or derived"
_IN_ORDER = itemgetter(*(_POSITION[name] for name in _NAMES))
_STARTED_AT, _DRY_RUN, _OUTCOME, _REQUESTED_PREFILL, _REQUESTED_DECODE = (
    1 + _KEYS.index(name)
    for name in ("started_at", "dry_run", "action_outcome", "requested_prefill", "requested_decode")
)


class HistoryReads(StoreCore):
    """Reads for people: the cycle history."""

    def latest_cycles(
        self,
        deployment_name: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
        *,
        include_simulated: bool = False,
    ) -> list[dict[str, Any]]:
        """Recent cycles, newest first: observed load, predicted load, decided and applied replicas.

        ``deployment_name`` is ``name`` or ``namespace/name``. Replays' simulated deployments
        are left out unless ``include_simulated``.

        The deployment name is resolved to ids first, so the runs are found through
        ``ix_planner_runs_deployment_started`` (a filter on the joined ``deployments`` table left
        PostgreSQL scanning every run of every deployment since ``since``); the runs are limited
        before anything is joined to them, and on PostgreSQL the three forecasts of a run come
        from one index probe (a ``LATERAL`` aggregate) instead of three joins."""
        since_at = aware(since, "since") if since is not None else None
        with self.engine.connect() as conn:
            dq = select(DEP.c.id, DEP.c.namespace, DEP.c.name, DEP.c.simulated)
            if deployment_name:
                if "/" in deployment_name:
                    ns, _, name = deployment_name.partition("/")
                    dq = dq.where(DEP.c.namespace == ns, DEP.c.name == name)
                else:
                    dq = dq.where(DEP.c.name == deployment_name)
            found = conn.execute(dq).all()
            deps = {int(r[0]): (r[1], r[2]) for r in found if include_simulated or not r[3]}
            if not deps:
                return []
            params: dict[str, Any] = {"lim": int(limit)}
            if deployment_name or len(deps) < len(found):
                params["dep_ids"] = sorted(deps)
            if since_at is not None:
                params["since"] = since_at
            rows: Sequence[Sequence[Any]]
            if self.dialect == "postgresql":
                rows = postgres.latest_cycles_rows(self, conn, self._latest_cycles_query, params, _STARTED_AT)
            else:
                rows = conn.execute(self._latest_cycles_query(params), params).all()
        out: list[dict[str, Any]] = []
        append = out.append
        dry_run = _POSITION["dry_run"]
        for row in rows:
            applied = row[_OUTCOME] in ("applied", "unchanged")
            values = [
                *row[1:],
                *deps[row[0]],
                row[_REQUESTED_PREFILL] if applied else None,
                row[_REQUESTED_DECODE] if applied else None,
            ]
            if row[_DRY_RUN] is not None:
                values[dry_run] = bool(row[_DRY_RUN])
            append(dict(zip(_NAMES, _IN_ORDER(values), strict=True)))
        return out

    def _latest_cycles_query(self, params: Mapping[str, Any]) -> Any:
        """``deployment_id``, then the source of every queried cycle field; bound parameters
        ``dep_ids``, ``since`` (when present in ``params``) and ``lim``."""
        runs = select(RUN.c.id, RUN.c.deployment_id, RUN.c.trigger, RUN.c.status, RUN.c.started_at, RUN.c.error)
        if "dep_ids" in params:
            if self.dialect == "postgresql":
                ids = bindparam("dep_ids", type_=postgresql.ARRAY(BigInteger))
                runs = runs.where(RUN.c.deployment_id == func.any(ids))
            else:
                runs = runs.where(RUN.c.deployment_id.in_(bindparam("dep_ids", expanding=True)))
        if "since" in params:
            runs = runs.where(RUN.c.started_at >= bindparam("since", type_=RUN.c.started_at.type))
        runs = runs.order_by(RUN.c.started_at.desc(), RUN.c.id.desc()).limit(bindparam("lim", type_=Integer))
        r = runs.subquery("r")
        pred: dict[str, Any]
        if self.dialect == "postgresql":
            h1 = and_(PRED.c.run_id == r.c.id, PRED.c.horizon == 1)

            def pick(column: Any, series: str) -> Any:
                return func.min(column).filter(PRED.c.series == series)

            preds = (
                select(
                    pick(PRED.c.predictor, SERIES[0]).label("predictor"),
                    *(pick(PRED.c.value, s).label(s) for s in SERIES),
                )
                .where(h1)
                .lateral("p")
            )
            pred = {name: preds.c[name] for name in ("predictor", *SERIES)}
        else:
            by_series = {s: aliased(PRED, name=f"p_{s}") for s in SERIES}
            pred = {"predictor": by_series[SERIES[0]].c.predictor, **{s: a.c.value for s, a in by_series.items()}}
        tables: dict[str, Any] = {"run": r.c, "obs": OBS.c, "pred": pred, "dec": DEC.c, "act": ACT.c}

        def column(source: str) -> Any:
            table, _, name = source.partition(".")
            return tables[table][name]

        q = select(r.c.deployment_id, *(column(f.source) for f in QUERIED_FIELDS if f.source)).select_from(r)
        q = q.outerjoin(OBS, OBS.c.run_id == r.c.id)
        if self.dialect == "postgresql":
            q = q.outerjoin(preds, true())
        else:
            for series, alias in by_series.items():
                q = q.outerjoin(alias, and_(alias.c.run_id == r.c.id, alias.c.series == series, alias.c.horizon == 1))
        q = q.outerjoin(DEC, DEC.c.run_id == r.c.id).outerjoin(ACT, ACT.c.decision_id == DEC.c.id)
        return q.order_by(r.c.started_at.desc(), r.c.id.desc())

    def stored_cycles(
        self, deployment_id: int, since: datetime, until: datetime
    ) -> list[tuple[Observation, Replicas | None]]:
        """Every observation of the deployment whose window ended in [since, until), oldest
        first, with the replicas its cycle decided (None when it decided none)."""
        q = (
            select(OBS, DEC.c.prefill_replicas.label("dec_prefill"), DEC.c.decode_replicas.label("dec_decode"))
            .select_from(OBS.outerjoin(DEC, DEC.c.run_id == OBS.c.run_id))
            .where(
                OBS.c.deployment_id == deployment_id,
                OBS.c.window_end >= aware(since, "since"),
                OBS.c.window_end < aware(until, "until"),
            )
            .order_by(OBS.c.window_end, OBS.c.id)
        )
        out: list[tuple[Observation, Replicas | None]] = []
        with self.engine.connect() as conn:
            for row in conn.execute(q).mappings():
                counts = row["arrival_counts"]
                obs = Observation(
                    window_start=row["window_start"],
                    window_end=row["window_end"],
                    num_req=row["num_req"],
                    ttft_ms=row["ttft_ms"],
                    itl_ms=row["itl_ms"],
                    isl=row["isl"],
                    osl=row["osl"],
                    request_duration_s=row["request_duration_s"],
                    queued_requests=row["queued_requests"],
                    current=Replicas(row["prefill_replicas"], row["decode_replicas"]),
                    quality=row["quality"],
                    error=row["error"],
                    arrival_counts=None if counts is None else tuple(int(c) for c in counts),
                    arrival_window_s=float(row["arrival_window_s"] or 1.0),
                    sample_time=row["sample_time"],
                )
                decided = (
                    None
                    if row["dec_prefill"] is None and row["dec_decode"] is None
                    else Replicas(row["dec_prefill"], row["dec_decode"])
                )
                out.append((obs, decided))
        return out
