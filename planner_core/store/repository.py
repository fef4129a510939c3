"""The :class:`Store`: every observation, prediction, decision and scaling action, in SQL.

Writes are audit-first: :meth:`Store.record_decision` has committed when it returns and
:meth:`Store.record_action_requested` commits a ``pending`` action before the connector is
called, so the database knows of every scaling request even if the planner dies mid-call
(:meth:`Store.pending_actions` reports what such a crash left behind).

Timestamps are passed in (a replay runs on a simulated clock) and must be timezone-aware; they
are stored as UTC and read back as aware UTC datetimes on both SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Float,
    Integer,
    Table,
    and_,
    bindparam,
    cast,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    not_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import aliased

from planner_core.records import Decision, Observation, Replicas, ScalingOutcome, SeriesForecast
from planner_core.state import CycleState, StateQuery
from planner_core.store import migrate
from planner_core.store.errors import StoreError
from planner_core.store.lock import CL, CycleLock, ensure_lock_row
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

DEFAULT_URL = "sqlite:///planner.db"
ENV_URL = "PLANNER_DB_URL"
SERIES = ("num_req", "isl", "osl")
SQLITE_BUSY_TIMEOUT_MS = 30_000

DEP: Table = Deployment.__table__  # type: ignore[assignment]
CFG: Table = PlannerConfigRow.__table__  # type: ignore[assignment]
RUN: Table = PlannerRun.__table__  # type: ignore[assignment]
OBS: Table = ObservationRow.__table__  # type: ignore[assignment]
PRED: Table = PredictionRow.__table__  # type: ignore[assignment]
DEC: Table = DecisionRow.__table__  # type: ignore[assignment]
ACT: Table = ScalingActionRow.__table__  # type: ignore[assignment]
PST: Table = PredictorStateRow.__table__  # type: ignore[assignment]

# The columns of :meth:`Store.latest_cycles`' query, in order (``deployment_id`` is replaced by
# ``namespace`` and ``deployment``; ``applied_*`` are derived).
_CYCLE_KEYS = (
    "deployment_id",
    "run_id",
    "trigger",
    "status",
    "started_at",
    "error",
    "quality",
    "observed_num_req",
    "observed_isl",
    "observed_osl",
    "observed_ttft_ms",
    "observed_itl_ms",
    "current_prefill",
    "current_decode",
    "predictor",
    "predicted_num_req",
    "predicted_isl",
    "predicted_osl",
    "decision_id",
    "policy",
    "action",
    "dry_run",
    "decided_prefill",
    "decided_decode",
    "decided_gpus",
    "reason",
    "action_id",
    "action_outcome",
    "requested_prefill",
    "requested_decode",
    "action_error",
)

_PLANNER_TABLES = {t.name for t in (DEP, CFG, RUN, OBS, PRED, DEC, ACT, PST, CL)} | {"alembic_version"}

_DECISION_COLUMNS = [
    c.name for c in DEC.columns if c.name not in ("id", "run_id", "deployment_id", "decided_at", "dry_run")
]


def resolve_url(url: str | None = None) -> str:
    """``url``, else ``$PLANNER_DB_URL``, else ``sqlite:///planner.db``; ``postgresql://`` uses psycopg 3."""
    raw = url or os.environ.get(ENV_URL) or DEFAULT_URL
    for prefix in ("postgres://", "postgresql://"):
        if raw.startswith(prefix):
            return "postgresql+psycopg://" + raw[len(prefix) :]
    return raw


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """An engine with WAL, a busy timeout and foreign keys on SQLite; pre-ping on PostgreSQL."""
    resolved = resolve_url(url)
    try:
        parsed = make_url(resolved)
    except ArgumentError as exc:
        raise StoreError(f"bad database URL {resolved!r}: {exc}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        connect_args = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        engine = create_engine(resolved, connect_args=connect_args, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            if parsed.database not in (None, "", ":memory:"):
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    if backend == "postgresql":
        return create_engine(resolved, pool_pre_ping=True, **kwargs)
    raise StoreError(f"unsupported database {backend!r} in {resolved!r}: use sqlite:/// or postgresql://")


def _aware(value: datetime, name: str = "timestamp") -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{name}: expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name}: {value!r} is naive; pass a timezone-aware UTC datetime")
    return value.astimezone(UTC)


def _num(value: Any) -> float | None:
    """Floats as stored: None and NaN -> NULL (SQLite cannot store NaN); +-inf kept."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _jsonable(value: Any) -> Any:
    """JSON both databases accept: non-finite floats -> None, numpy scalars/arrays -> Python."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return _jsonable(value.tolist())
    if hasattr(value, "value") and type(value).__module__ != "builtins":  # enums
        return _jsonable(value.value)
    return value


def _state_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"predictor state: {type(value).__name__} is not JSON-serialisable")


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


@dataclass
class _RunInfo:
    deployment_id: int
    started_at: datetime


class Store:
    """The audit store. ``Store()`` uses ``$PLANNER_DB_URL`` or ``sqlite:///planner.db``."""

    def __init__(
        self,
        url: str | None = None,
        *,
        check_schema: bool = True,
        lock_ttl_s: float = 600.0,
        async_commit: bool = True,
        echo: bool = False,
    ) -> None:
        self.url = resolve_url(url)
        self.engine = make_engine(self.url, echo=echo)
        self.dialect = self.engine.dialect.name
        # PostgreSQL: one-statement writes run in autocommit (no BEGIN / COMMIT round trips). The
        # durable ones (decisions, action requests) share the main pool, whose sessions keep
        # ``synchronous_commit = on``; the others use a second small pool whose sessions start
        # with ``synchronous_commit = off`` (see :meth:`_single`).
        self._autocommit_engine: Engine | None = None
        self._async_engine: Engine | None = None
        if self.dialect == "postgresql":
            self._autocommit_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
            self._async_engine = (
                make_engine(
                    self.url,
                    echo=echo,
                    isolation_level="AUTOCOMMIT",
                    pool_size=2,
                    connect_args={"options": "-c synchronous_commit=off"},
                )
                if async_commit
                else self._autocommit_engine
            )
        self.lock_ttl_s = lock_ttl_s
        self.async_commit = async_commit
        self._locks: dict[int, CycleLock] = {}
        self._runs: dict[int, _RunInfo] = {}
        self._decisions: dict[int, int] = {}
        self._config_ids: dict[str, int] = {}
        self._sql_cache: dict[tuple[Any, ...], tuple[str, dict[str, Any]]] = {}
        if check_schema:
            self._check_schema()

    # -- lifecycle ----------------------------------------------------------------------------
    def close(self) -> None:
        if self._async_engine is not None and self._async_engine is not self._autocommit_engine:
            self._async_engine.dispose()
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"

    # -- schema -------------------------------------------------------------------------------
    def upgrade(self, revision: str = "head") -> None:
        """``alembic upgrade head`` (or to ``revision``)."""
        migrate.upgrade(self.engine, revision)

    def downgrade(self, revision: str) -> None:
        migrate.downgrade(self.engine, revision)

    def current_revision(self) -> str | None:
        return migrate.current_revision(self.engine)

    def _check_schema(self) -> None:
        head = migrate.head_revision()
        try:
            current = self.current_revision()
        except OperationalError as exc:
            raise StoreError(f"cannot open the planner database {self!r}: {exc.orig}") from None
        if current == head:
            return
        hint = f"run `sla-planner db upgrade --db-url {self.engine.url.render_as_string(hide_password=True)}`"
        if current is None:
            tables = inspect(self.engine).get_table_names()
            if self.dialect == "sqlite" and not tables:
                try:
                    self.upgrade()
                except OperationalError:  # another process created it at the same moment
                    if not self._wait_for_revision(head):
                        raise
                return
            # pysqlite runs DDL outside a transaction: another process creating the schema shows
            # its tables before its revision. Planner tables only: wait for it to finish.
            if self.dialect == "sqlite" and set(tables) <= _PLANNER_TABLES and self._wait_for_revision(head):
                return
            what = "has other tables but no planner schema" if tables else "has no planner schema yet"
            raise StoreError(f"the database {self!r} {what}; {hint}")
        known = {s.revision for s in migrate.ScriptDirectory.from_config(migrate.alembic_config()).walk_revisions()}
        if current not in known:
            raise StoreError(
                f"the database {self!r} is at schema revision {current}, newer than this planner "
                f"knows (head {head}); upgrade sla-planner"
            )
        raise StoreError(f"the database {self!r} is at schema revision {current}, this planner needs {head}; {hint}")

    def _wait_for_revision(self, head: str, timeout_s: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.current_revision() == head:
                return True
            time.sleep(0.05)
        return False

    # -- deployments and runs -----------------------------------------------------------------
    def ensure_deployment(
        self,
        name: str,
        namespace: str,
        model: str | None,
        backend: str,
        mode: str,
        created_at: datetime | None = None,
        *,
        simulated: bool = False,
    ) -> int:
        """The id of deployment ``namespace/name``, created (or its model/backend/mode updated).

        ``simulated`` marks a replay's virtual cluster (set when the row is created): the
        reporting views and :meth:`latest_cycles` leave such deployments out."""
        backend, mode = str(getattr(backend, "value", backend)), str(getattr(mode, "value", mode))
        with self.engine.begin() as conn:
            row = conn.execute(
                select(DEP.c.id, DEP.c.model, DEP.c.backend, DEP.c.mode).where(
                    DEP.c.namespace == namespace, DEP.c.name == name
                )
            ).first()
            if row is not None:
                if (row.model, row.backend, row.mode) != (model, backend, mode):
                    conn.execute(update(DEP).where(DEP.c.id == row.id).values(model=model, backend=backend, mode=mode))
                return int(row.id)
            ins = (
                self._insert(DEP)
                .values(
                    name=name,
                    namespace=namespace,
                    model=model,
                    backend=backend,
                    mode=mode,
                    created_at=_aware(created_at or datetime.now(UTC), "created_at"),
                    simulated=simulated,
                )
                .on_conflict_do_nothing()
            )
            conn.execute(ins)
            dep_id = conn.execute(select(DEP.c.id).where(DEP.c.namespace == namespace, DEP.c.name == name)).scalar_one()
            ensure_lock_row(conn, dep_id)
            return int(dep_id)

    def deployment_id(self, name: str, namespace: str | None = None) -> int | None:
        q = select(DEP.c.id).where(DEP.c.name == name)
        if namespace is not None:
            q = q.where(DEP.c.namespace == namespace)
        with self.engine.connect() as conn:
            ids = conn.execute(q).scalars().all()
        if len(ids) > 1:
            raise StoreError(f"deployment name {name!r} exists in several namespaces; give namespace/name")
        return int(ids[0]) if ids else None

    @contextmanager
    def cycle_lock(self, deployment_id: int, wait_s: float = 0.0, ttl_s: float | None = None) -> Iterator[CycleLock]:
        """Hold the deployment's cycle lock; raises :class:`LockBusy` if still held after ``wait_s``."""
        if deployment_id in self._locks:
            raise StoreError(f"this store already holds the cycle lock of deployment {deployment_id}")
        lock = CycleLock(self.engine, deployment_id, wait_s=wait_s, ttl_s=ttl_s or self.lock_ttl_s)
        lock.acquire()
        self._locks[deployment_id] = lock
        try:
            yield lock
        finally:
            self._locks.pop(deployment_id, None)
            lock.release()

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
        started_at = _aware(started_at, "started_at")
        if self.dialect == "postgresql":
            config_id = self._cached_config_id(config)
            if config_id is not None:
                run_id = self._begin_run_pg(deployment_id, trigger, config_id, started_at, flow_run_id, reason)
                self._runs[run_id] = _RunInfo(deployment_id, started_at)
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
        self._runs[run_id] = _RunInfo(deployment_id, started_at)
        return int(run_id)

    def _begin_run_pg(
        self,
        deployment_id: int,
        trigger: str,
        config_id: int,
        started_at: datetime,
        flow_run_id: str | None,
        reason: str | None = None,
    ) -> int:
        """The run insert and the lock's ``run_id`` in one autocommitted statement (two CTEs)."""
        run = _run_insert(deployment_id, trigger, config_id, started_at, flow_run_id, reason).cte("run")
        q = select(run.c.id)
        lock = self._locks.get(deployment_id)
        if lock is not None:
            bind = (
                update(CL)
                .where(CL.c.deployment_id == deployment_id, CL.c.token == lock.token)
                .values(run_id=select(run.c.id).scalar_subquery())
                .returning(CL.c.deployment_id)
                .cte("bind")
            )
            q = q.add_cte(bind)
        with self._single(durable=False) as conn:
            run_id = int(conn.execute(q).scalar_one())
        if lock is not None:
            lock.bind_run_values(run_id, datetime.now(UTC))
        return run_id

    def finish_run(self, run_id: int, status: str, ended_at: datetime, error: str | None = None) -> None:
        with self._single(durable=False) as conn:
            n = conn.execute(
                update(RUN)
                .where(RUN.c.id == run_id)
                .values(status=status, ended_at=_aware(ended_at, "ended_at"), error=error)
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
        """Mark runs still ``running`` (their process died) as ``abandoned``; call under the lock."""
        q = update(RUN).where(RUN.c.deployment_id == deployment_id, RUN.c.status == "running")
        if exclude_run_id is not None:
            q = q.where(RUN.c.id != exclude_run_id)
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    q.values(
                        status=status,
                        ended_at=_aware(ended_at, "ended_at"),
                        error="the planner stopped before finishing this run",
                    )
                ).rowcount
            )

    # -- per-cycle records --------------------------------------------------------------------
    def record_observation(self, run_id: int, obs: Observation) -> int:
        with self._single(durable=False) as conn:
            return self._insert_observation(conn, run_id, obs)

    def record_predictions(self, run_id: int, forecasts: Mapping[str, SeriesForecast]) -> None:
        if not forecasts:
            return
        with self._single(durable=False) as conn:
            self._insert_predictions(conn, run_id, forecasts)

    def record_decision(self, run_id: int, decision: Decision, dry_run: bool) -> int:
        """Insert the decision and COMMIT (durably: the WAL is flushed before this returns); returns its id."""
        with self._single(durable=True) as conn:
            return self._insert_decision(conn, run_id, decision, dry_run)

    def write_cycle(
        self,
        run_id: int,
        observation: Observation | None,
        forecasts: Mapping[str, SeriesForecast] | None,
        decision: Decision | None,
        dry_run: bool = False,
    ) -> tuple[int | None, int | None]:
        """Observation, predictions and decision in one transaction (committed on return)."""
        with self.engine.begin() as conn:
            obs_id = self._insert_observation(conn, run_id, observation) if observation is not None else None
            if forecasts:
                self._insert_predictions(conn, run_id, forecasts)
            dec_id = self._insert_decision(conn, run_id, decision, dry_run) if decision is not None else None
        return obs_id, dec_id

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
                    target_prefill=_int(targets.prefill),
                    target_decode=_int(targets.decode),
                    requested_at=_aware(requested_at, "requested_at"),
                    outcome="pending",
                )
                .returning(ACT.c.id)
            ).scalar_one()
        self._decisions.pop(decision_id, None)
        return int(action_id)

    def record_action_outcome(self, action_id: int, outcome: ScalingOutcome) -> None:
        ack = _aware(outcome.acknowledged_at, "acknowledged_at") if outcome.acknowledged_at else None
        with self._single(durable=False) as conn:
            n = conn.execute(
                update(ACT)
                .where(ACT.c.id == action_id)
                .values(outcome=outcome.outcome, acknowledged_at=ack, error=outcome.error)
            ).rowcount
        if n != 1:
            raise StoreError(f"unknown scaling action {action_id}")

    # -- predictor state ------------------------------------------------------------------------
    def save_predictor_state(
        self, deployment_id: int, series: str, predictor: str, state: Mapping[str, Any], updated_at: datetime
    ) -> None:
        payload = json.dumps(state, default=_state_default, sort_keys=True)
        values = {
            "deployment_id": deployment_id,
            "series": series,
            "predictor": predictor,
            "state_json": payload,
            "updated_at": _aware(updated_at, "updated_at"),
        }
        ins = self._insert(PST).values(**values)
        ins = ins.on_conflict_do_update(
            index_elements=[PST.c.deployment_id, PST.c.series, PST.c.predictor],
            set_={"state_json": payload, "updated_at": values["updated_at"]},
        )
        with self._single(durable=False) as conn:
            conn.execute(ins)

    def load_predictor_state(self, deployment_id: int, series: str, predictor: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            raw = conn.execute(
                select(PST.c.state_json).where(
                    PST.c.deployment_id == deployment_id, PST.c.series == series, PST.c.predictor == predictor
                )
            ).scalar()
        return None if raw is None else json.loads(raw)

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

    def save_cycle_state(self, deployment_id: int, state: CycleState, predictor: str, saved_at: datetime) -> None:
        """Keep the part of ``state`` the cycle's rows do not hold: the predictor's state."""
        for series, values in (state.predictor_state or {}).items():
            self.save_predictor_state(deployment_id, series, predictor, values, saved_at)

    def deployments_with_predictor_state(self, predictor: str) -> list[tuple[int, str, str]]:
        """(deployment id, namespace, name) of every deployment with a saved ``predictor`` state."""
        q = (
            select(DEP.c.id, DEP.c.namespace, DEP.c.name)
            .where(DEP.c.id.in_(select(PST.c.deployment_id).where(PST.c.predictor == predictor)))
            .order_by(DEP.c.namespace, DEP.c.name)
        )
        with self.engine.connect() as conn:
            return [(int(i), str(ns), str(n)) for i, ns, n in conn.execute(q)]

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
                OBS.c.window_end >= _aware(since, "since"),
                OBS.c.window_end < _aware(until, "until"),
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
                    current=Replicas(row["prefill_replicas"], row["decode_replicas"]),
                    quality=row["quality"],
                    error=row["error"],
                    arrival_counts=None if counts is None else tuple(int(c) for c in counts),
                    arrival_window_s=float(row["arrival_window_s"] or 1.0),
                )
                decided = (
                    None
                    if row["dec_prefill"] is None and row["dec_decode"] is None
                    else Replicas(row["dec_prefill"], row["dec_decode"])
                )
                out.append((obs, decided))
        return out

    # -- read side ------------------------------------------------------------------------------
    def _epoch(self, column: Any) -> Any:
        if self.dialect == "sqlite":
            return (func.julianday(column) - 2440587.5) * 86400.0
        return cast(func.extract("epoch", column), Float)  # EXTRACT gives numeric on PostgreSQL 14+

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
            return self._load_histories_pg(deployment_id, series, since, limit)
        cols = [OBS.c[name] for name in series]
        t = func.round(self._epoch(OBS.c.window_end), 3).label("t")
        q = select(t, *cols).where(OBS.c.deployment_id == deployment_id)
        if since is not None:
            q = q.where(OBS.c.window_end >= _aware(since, "since"))
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

    def _load_histories_pg(
        self, deployment_id: int, series: Sequence[str], since: datetime | None, limit: int | None
    ) -> dict[str, list[tuple[float, float | None]]]:
        """One row of arrays (``array_agg``) instead of one row per point.

        A week of 60-second history is ~10,000 points: as rows that is 10,000 driver tuples and
        10,000 SQLAlchemy ``Row`` objects, all GC-tracked containers, before the output is
        built; the arrays are decoded by psycopg's C loader and zipped into the output tuples,
        so the only containers allocated per point are the ones returned.

        The points are aggregated from an index-ordered subquery (one ``ORDER BY`` per aggregate
        would sort the week four times); all arrays come from the same pass over the same rows,
        so they stay aligned, and the order is checked here (sorted if it ever is not). The epoch
        is ``date_part`` (double precision; ``EXTRACT`` is numeric, much slower) rounded to
        milliseconds as the row path does."""
        t = (func.round(func.date_part("epoch", OBS.c.window_end) * 1000.0) / 1000.0).label("t")
        inner = select(t, *(OBS.c[name].label(name) for name in series)).where(OBS.c.deployment_id == deployment_id)
        if since is not None:
            inner = inner.where(OBS.c.window_end >= _aware(since, "since"))
        if limit is not None:  # the latest ``limit`` points, returned oldest first
            latest = inner.order_by(OBS.c.window_end.desc()).limit(int(limit)).subquery("latest")
            ordered = select(*latest.c).order_by(latest.c.t)
        else:
            ordered = inner.order_by(OBS.c.window_end)
        sub = ordered.subquery("h")
        q = select(func.array_agg(sub.c.t), *(func.array_agg(sub.c[name]) for name in series))
        with self.engine.connect() as conn:
            arrays = conn.execute(q).one()
        ts = arrays[0] or []
        out = {name: list(zip(ts, arrays[i] or [], strict=True)) for i, name in enumerate(series, start=1)}
        if not all(map(float.__le__, ts, islice(ts, 1, None))):
            for points in out.values():
                points.sort(key=itemgetter(0))
        return out

    def load_history(
        self, deployment_id: int, series: str, since: datetime | None = None, limit: int | None = None
    ) -> list[tuple[float, float | None]]:
        """Observed ``series`` ("num_req", "isl" or "osl"): ``(window_end epoch s, value)`` oldest first."""
        return self.load_histories(deployment_id, (series,), since, limit)[series]

    def recent_arrival_counts(
        self, deployment_id: int, since: datetime, before: datetime
    ) -> list[tuple[tuple[int, ...], float]]:
        """Burst patterns ``(arrival_counts, arrival_window_s)`` of the observations whose window
        ended in ``[since, before)``, oldest first (observations without a pattern left out)."""
        q = (
            select(OBS.c.arrival_counts, OBS.c.arrival_window_s)
            .where(
                OBS.c.deployment_id == deployment_id,
                OBS.c.window_end >= _aware(since, "since"),
                OBS.c.window_end < _aware(before, "before"),
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
        first: the targets *before* scale-down stabilisation (what a restarted stabiliser must
        remember), from ``scale`` decisions only."""
        q = (
            select(DEC.c.decided_at, DEC.c.prefill_replicas, DEC.c.decode_replicas, DEC.c.details)
            .where(
                DEC.c.deployment_id == deployment_id,
                DEC.c.decided_at >= _aware(since, "since"),
                DEC.c.decided_at < _aware(before, "before"),
                DEC.c.action == "scale",
            )
            .order_by(DEC.c.decided_at, DEC.c.id)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        out: list[tuple[datetime, int | None, int | None]] = []
        for decided_at, prefill, decode, details in rows:
            before_stabilizing = (details or {}).get("stabilized_from") or {}
            prefill = before_stabilizing.get("prefill", prefill)
            decode = before_stabilizing.get("decode", decode)
            out.append((_aware(decided_at, "decided_at"), _int(prefill), _int(decode)))
        return out

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
        since_at = _aware(since, "since") if since is not None else None
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
                rows = self._latest_cycles_pg(conn, params)
            else:
                rows = conn.execute(self._latest_cycles_query(params), params).all()
        out: list[dict[str, Any]] = []
        append = out.append
        keys = _CYCLE_KEYS[2:]
        for row in rows:
            ns, dep_name = deps[row[0]]
            d = {"run_id": row[1], "namespace": ns, "deployment": dep_name}  # the keys in their usual order
            d.update(zip(keys, row[2:], strict=True))
            if d["dry_run"] is not None:
                d["dry_run"] = bool(d["dry_run"])
            applied = d["action_outcome"] in ("applied", "unchanged")
            d["applied_prefill"] = d["requested_prefill"] if applied else None
            d["applied_decode"] = d["requested_decode"] if applied else None
            append(d)
        return out

    def _latest_cycles_pg(self, conn: Connection, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Run the PostgreSQL form of the query on the driver's cursor in binary format.

        1,441 rows x 31 columns: binary floats, integers and timestamps are copied, not parsed
        from text, and the rows stay plain tuples (no ``Row`` objects, no per-value result
        processors). The SQL is compiled once per shape (filters present or not)."""
        shape = ("latest_cycles", "dep_ids" in params, "since" in params)
        cached = self._sql_cache.get(shape)
        if cached is None:
            compiled = self._latest_cycles_query(params).compile(dialect=self.engine.dialect)
            cached = self._sql_cache[shape] = (compiled.string, dict(compiled.params))
        sql, constants = cached
        dbapi: Any = conn.connection.driver_connection
        # An OLTP read of a few thousand rows: parallel workers only add their start-up time, and
        # a long --since would push the cost over jit_above_cost (JIT compilation then takes
        # longer than the query). SET LOCAL-equivalents, undone by the rollback.
        with dbapi.cursor(binary=True) as cur:
            cur.execute(
                "SELECT set_config('jit', 'off', true), set_config('max_parallel_workers_per_gather', '0', true)"
            )
            cur.execute(sql, {**constants, **params})
            rows = cur.fetchall()
        conn.rollback()
        return [
            row if row[4] is None or row[4].tzinfo is UTC else (*row[:4], row[4].astimezone(UTC), *row[5:])
            for row in rows
        ]

    def _latest_cycles_query(self, params: Mapping[str, Any]) -> Any:
        """The cycles, columns in the order of ``_CYCLE_KEYS``; bound parameters ``dep_ids``,
        ``since`` (when present in ``params``) and ``lim``."""
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
        if self.dialect == "postgresql":
            h1 = and_(PRED.c.run_id == r.c.id, PRED.c.horizon == 1)

            def pick(column: Any, series: str) -> Any:
                return func.min(column).filter(PRED.c.series == series)

            preds = (
                select(
                    pick(PRED.c.predictor, "num_req").label("predictor"),
                    pick(PRED.c.value, "num_req").label("num_req"),
                    pick(PRED.c.value, "isl").label("isl"),
                    pick(PRED.c.value, "osl").label("osl"),
                )
                .where(h1)
                .lateral("p")
            )
            pred_cols = (preds.c.predictor, preds.c.num_req, preds.c.isl, preds.c.osl)
        else:
            pn, pi, po = (aliased(PRED, name=f"p_{s}") for s in SERIES)
            pred_cols = (pn.c.predictor, pn.c.value, pi.c.value, po.c.value)
        q = select(
            r.c.deployment_id,
            r.c.id,
            r.c.trigger,
            r.c.status,
            r.c.started_at,
            r.c.error,
            OBS.c.quality,
            OBS.c.num_req,
            OBS.c.isl,
            OBS.c.osl,
            OBS.c.ttft_ms,
            OBS.c.itl_ms,
            OBS.c.prefill_replicas,
            OBS.c.decode_replicas,
            *pred_cols,
            DEC.c.id,
            DEC.c.policy,
            DEC.c.action,
            DEC.c.dry_run,
            DEC.c.prefill_replicas,
            DEC.c.decode_replicas,
            DEC.c.total_gpus,
            DEC.c.reason,
            ACT.c.id,
            ACT.c.outcome,
            ACT.c.target_prefill,
            ACT.c.target_decode,
            ACT.c.error,
        ).select_from(r)
        q = q.outerjoin(OBS, OBS.c.run_id == r.c.id)
        if self.dialect == "postgresql":
            q = q.outerjoin(preds, true())
        else:
            for alias, series in zip((pn, pi, po), SERIES, strict=True):
                q = q.outerjoin(alias, and_(alias.c.run_id == r.c.id, alias.c.series == series, alias.c.horizon == 1))
        q = q.outerjoin(DEC, DEC.c.run_id == r.c.id).outerjoin(ACT, ACT.c.decision_id == DEC.c.id)
        return q.order_by(r.c.started_at.desc(), r.c.id.desc())

    # -- retention ------------------------------------------------------------------------------
    def prune(self, older_than: timedelta, now: datetime | None = None) -> dict[str, int]:
        """Delete runs started before ``now - older_than`` with their observations, predictions,
        decisions and actions, and configurations no run uses any more. Deployments and
        predictor state are never touched."""
        if older_than.total_seconds() < 0:
            raise ValueError("older_than must not be negative")
        cutoff = _aware(now or datetime.now(UTC), "now") - older_than
        old_runs = select(RUN.c.id).where(RUN.c.started_at < cutoff)
        old_decisions = select(DEC.c.id).where(DEC.c.run_id.in_(old_runs))
        counts: dict[str, int] = {}
        with self.engine.begin() as conn:
            counts["scaling_actions"] = conn.execute(delete(ACT).where(ACT.c.decision_id.in_(old_decisions))).rowcount
            counts["predictions"] = conn.execute(delete(PRED).where(PRED.c.run_id.in_(old_runs))).rowcount
            counts["observations"] = conn.execute(delete(OBS).where(OBS.c.run_id.in_(old_runs))).rowcount
            counts["decisions"] = conn.execute(delete(DEC).where(DEC.c.run_id.in_(old_runs))).rowcount
            conn.execute(update(CL).where(CL.c.run_id.in_(old_runs)).values(run_id=None))
            counts["planner_runs"] = conn.execute(delete(RUN).where(RUN.c.started_at < cutoff)).rowcount
            used = select(RUN.c.config_id).where(RUN.c.config_id.is_not(None))
            counts["planner_configs"] = conn.execute(delete(CFG).where(CFG.c.id.not_in(used))).rowcount
        self._config_ids.clear()
        return counts

    def table_counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {
                t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                for t in (DEP, CFG, RUN, OBS, PRED, DEC, ACT, PST)
            }

    # -- internals ------------------------------------------------------------------------------
    @contextmanager
    def _tx(self, durable: bool = True) -> Iterator[Connection]:
        """A transaction. ``durable=False`` on PostgreSQL commits without waiting for the WAL flush
        (``synchronous_commit = off``): the row is safe from a planner crash at once and from a
        server crash as soon as any later durable commit (the next decision or action request)
        flushes the WAL, which it does in order. Decisions and action requests are always durable."""
        with self.engine.begin() as conn:
            if not durable and self.async_commit and self.dialect == "postgresql":
                conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
            yield conn

    @contextmanager
    def _single(self, durable: bool = True) -> Iterator[Connection]:
        """A connection for writes that are ONE statement each (plus reads before it).

        On PostgreSQL the statement commits by itself (autocommit): one round trip instead of
        BEGIN, the statement and COMMIT. ``durable=True`` runs on the main pool
        (``synchronous_commit = on``: the commit has reached the disk when the call returns);
        ``durable=False`` on the pool whose sessions run with ``synchronous_commit = off`` (same
        guarantees as :meth:`_tx` with ``durable=False``). On SQLite it is :meth:`_tx`."""
        engine = self._autocommit_engine if durable else self._async_engine
        if engine is None:
            with self._tx(durable) as conn:
                yield conn
            return
        with engine.connect() as conn:
            yield conn

    def _insert(self, table: Any) -> Any:
        return postgresql.insert(table) if self.dialect == "postgresql" else sqlite.insert(table)

    def _run_info(self, conn: Connection, run_id: int) -> _RunInfo:
        info = self._runs.get(run_id)
        if info is None:
            row = conn.execute(select(RUN.c.deployment_id, RUN.c.started_at).where(RUN.c.id == run_id)).first()
            if row is None:
                raise StoreError(f"unknown planner run {run_id}")
            info = _RunInfo(int(row.deployment_id), row.started_at)
            if len(self._runs) > 1024:
                self._runs.clear()
            self._runs[run_id] = info
        return info

    def _cached_config_id(self, config: Mapping[str, Any]) -> int | None:
        return self._config_ids.get(_config_digest(_jsonable(dict(config))))

    def _config_id(self, conn: Connection, config: Mapping[str, Any], seen_at: datetime) -> int:
        doc = _jsonable(dict(config))
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

    def _insert_observation(self, conn: Connection, run_id: int, obs: Observation) -> int:
        info = self._run_info(conn, run_id)
        return int(
            conn.execute(
                insert(OBS).values(observation_values(obs, run_id, info.deployment_id)).returning(OBS.c.id)
            ).scalar_one()
        )

    def _insert_predictions(self, conn: Connection, run_id: int, forecasts: Mapping[str, SeriesForecast]) -> None:
        self._run_info(conn, run_id)
        # one multi-row INSERT: one statement (atomic also in autocommit), one round trip
        conn.execute(insert(PRED).values(prediction_values(forecasts, run_id)))

    def _insert_decision(self, conn: Connection, run_id: int, decision: Decision, dry_run: bool) -> int:
        info = self._run_info(conn, run_id)
        values = decision_values(decision, run_id, info.deployment_id, info.started_at, dry_run)
        dec_id = int(conn.execute(insert(DEC).values(values).returning(DEC.c.id)).scalar_one())
        if len(self._decisions) > 1024:
            self._decisions.clear()
        self._decisions[dec_id] = info.deployment_id
        return dec_id


def _config_digest(doc: Any) -> str:
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# -- row builders (shared with the benchmark's bulk fill) ------------------------------------------
def observation_values(obs: Observation, run_id: int, deployment_id: int) -> dict[str, Any]:
    current = obs.current or Replicas(None, None)
    return {
        "run_id": run_id,
        "deployment_id": deployment_id,
        "window_start": _aware(obs.window_start, "window_start"),
        "window_end": _aware(obs.window_end, "window_end"),
        "num_req": _num(obs.num_req),
        "ttft_ms": _num(obs.ttft_ms),
        "itl_ms": _num(obs.itl_ms),
        "isl": _num(obs.isl),
        "osl": _num(obs.osl),
        "request_duration_s": _num(obs.request_duration_s),
        "prefill_replicas": _int(current.prefill),
        "decode_replicas": _int(current.decode),
        "quality": obs.quality,
        "error": obs.error,
        "arrival_counts": None if obs.arrival_counts is None else [int(c) for c in obs.arrival_counts],
        "arrival_window_s": None if obs.arrival_counts is None else _num(obs.arrival_window_s),
    }


def prediction_values(forecasts: Mapping[str, SeriesForecast], run_id: int) -> list[dict[str, Any]]:
    return [
        {
            "run_id": run_id,
            "series": series,
            "predictor": f.predictor,
            "value": _num(f.value),
            "upper": _num(f.upper),
            "quantile": _num(f.quantile),
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
    for name in _DECISION_COLUMNS:
        value = d.get(name)
        if name == "details":
            values[name] = _jsonable(value or {})
        elif isinstance(value, bool) or value is None or isinstance(value, str):
            values[name] = value
        elif isinstance(value, float):
            values[name] = _num(value)
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
    for name in ("budget_limited", "budget_exceeded"):
        kwargs[name] = bool(kwargs[name])
    return Decision(**kwargs)


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
