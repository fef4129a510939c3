"""The audit schema as SQLAlchemy 2.0 typed ORM classes.

One row per planned deployment, one per planning cycle (``planner_runs``) and, hanging off a
run, its observation, its per-series predictions, its decision and the scaling actions the
decision caused. ``predictor_state`` keeps the serialised predictor models for warm starts;
``cycle_locks`` says who is planning a deployment right now. The effective configuration of a
run is stored once per distinct JSON document in ``planner_configs`` (a 60-second planner would
otherwise repeat the same kilobytes 1440 times a day); ``v_runs`` joins it back.

The migrations in ``migrations/versions`` create exactly this schema; ``tests/test_migrations.py``
checks with Alembic's autogenerate that they agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT primary keys on PostgreSQL (a 60-second planner for many deployments outgrows
# 2^31 prediction rows), INTEGER on SQLite where only "INTEGER PRIMARY KEY" is the rowid.
BigId = BigInteger().with_variant(sqlite.INTEGER(), "sqlite")
# JSONB on PostgreSQL (indexable, ``->>``), JSON text on SQLite (``json_extract``).
JsonDoc = JSON().with_variant(postgresql.JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """``TIMESTAMP WITH TIME ZONE``; always UTC and timezone-aware in Python.

    SQLite stores no zone, so values are converted to UTC before they are written and marked
    UTC when they are read back. Naive datetimes are refused: a planner that mixes local and
    UTC clocks would otherwise write wrong history silently."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Deployment(Base):
    """A planned deployment (one DynamoGraphDeployment, or one replayed virtual cluster)."""

    __tablename__ = "deployments"
    __table_args__ = (UniqueConstraint("namespace", "name", name="uq_deployments_namespace_name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    namespace: Mapped[str] = mapped_column(String(255))
    model: Mapped[str | None] = mapped_column(String(255))
    backend: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # A replay's virtual cluster: kept out of the reporting views and `history` by default.
    simulated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class PlannerConfigRow(Base):
    """One distinct effective configuration (``PlannerConfig.model_dump(mode="json")``)."""

    __tablename__ = "planner_configs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    config: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PlannerRun(Base):
    """One planning cycle of one deployment."""

    __tablename__ = "planner_runs"
    __table_args__ = (
        Index("ix_planner_runs_deployment_started", "deployment_id", "started_at"),
        Index("ix_planner_runs_started_at", "started_at"),
        Index("ix_planner_runs_deployment_status", "deployment_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"))
    trigger: Mapped[str] = mapped_column(String(32))  # schedule | manual | replay
    status: Mapped[str] = mapped_column(String(32))  # running | ok | held | error | skipped_locked ...
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    config_id: Mapped[int | None] = mapped_column(ForeignKey("planner_configs.id"), index=True)
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)  # why an operator re-planned (trigger manual)


class ObservationRow(Base):
    """What the frontend reported for one interval, with its data-quality flag."""

    __tablename__ = "observations"
    # Covering index: the warm-start read (num_req/isl/osl by time) never touches the table.
    __table_args__ = (
        Index("ix_observations_deployment_window_end", "deployment_id", "window_end", "num_req", "isl", "osl"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("planner_runs.id", ondelete="CASCADE"), index=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"))
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    num_req: Mapped[float | None] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    itl_ms: Mapped[float | None] = mapped_column(Float)
    isl: Mapped[float | None] = mapped_column(Float)
    osl: Mapped[float | None] = mapped_column(Float)
    request_duration_s: Mapped[float | None] = mapped_column(Float)
    # Requests waiting for a first token at the window's end (None: the frontend does not say).
    queued_requests: Mapped[float | None] = mapped_column(Float)
    prefill_replicas: Mapped[int | None] = mapped_column(Integer)
    decode_replicas: Mapped[int | None] = mapped_column(Integer)
    quality: Mapped[str] = mapped_column(String(32))  # ok | no_data | stale | error | partial
    error: Mapped[str | None] = mapped_column(Text)
    # Requests per ``arrival_window_s`` seconds across the interval (JSON list of ints): the
    # burst pattern the default policy sizes prefill for. NULL = the source could not tell.
    arrival_counts: Mapped[list[int] | None] = mapped_column(JsonDoc)
    arrival_window_s: Mapped[float | None] = mapped_column(Float)
    # When the newest sample of the request counter was taken (the stale-data guard's input).
    sample_time: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PredictionRow(Base):
    """One predicted series (num_req, isl or osl) for the next interval(s)."""

    __tablename__ = "predictions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("planner_runs.id", ondelete="CASCADE"), index=True)
    series: Mapped[str] = mapped_column(String(32))
    predictor: Mapped[str] = mapped_column(String(64))
    value: Mapped[float | None] = mapped_column(Float)
    upper: Mapped[float | None] = mapped_column(Float)
    quantile: Mapped[float | None] = mapped_column(Float)
    horizon: Mapped[int] = mapped_column(Integer)


class DecisionRow(Base):
    """Every number of one sizing decision (the fields of :class:`planner_core.records.Decision`)."""

    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decisions_deployment_decided", "deployment_id", "decided_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("planner_runs.id", ondelete="CASCADE"), index=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime)
    dry_run: Mapped[bool] = mapped_column(Boolean)
    policy: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    # inputs
    interval_s: Mapped[float] = mapped_column(Float)
    num_req: Mapped[float | None] = mapped_column(Float)
    isl: Mapped[float | None] = mapped_column(Float)
    osl: Mapped[float | None] = mapped_column(Float)
    ttft_sla_ms: Mapped[float] = mapped_column(Float)
    itl_sla_ms: Mapped[float] = mapped_column(Float)
    prefill_correction: Mapped[float | None] = mapped_column(Float)
    decode_correction: Mapped[float | None] = mapped_column(Float)
    prefill_correction_applied: Mapped[float | None] = mapped_column(Float)
    decode_correction_applied: Mapped[float | None] = mapped_column(Float)
    # prefill
    prefill_demand_tokens_per_s: Mapped[float | None] = mapped_column(Float)
    prefill_thpt_per_gpu: Mapped[float | None] = mapped_column(Float)
    prefill_ttft_ms_profile: Mapped[float | None] = mapped_column(Float)
    prefill_replicas_unconstrained: Mapped[int | None] = mapped_column(Integer)
    prefill_replicas_after_min: Mapped[int | None] = mapped_column(Integer)
    prefill_replicas_after_cap: Mapped[int | None] = mapped_column(Integer)
    prefill_replicas: Mapped[int | None] = mapped_column(Integer)
    prefill_infeasible_num_req: Mapped[float | None] = mapped_column(Float)  # migration 0009
    # decode
    decode_context_length: Mapped[float | None] = mapped_column(Float)
    decode_itl_target_ms: Mapped[float | None] = mapped_column(Float)
    decode_thpt_per_gpu: Mapped[float | None] = mapped_column(Float)
    decode_itl_ms_at_operating_point: Mapped[float | None] = mapped_column(Float)
    decode_kv_usage_at_operating_point: Mapped[float | None] = mapped_column(Float)
    decode_sla_reachable: Mapped[bool | None] = mapped_column(Boolean)
    decode_demand_tokens_per_s: Mapped[float | None] = mapped_column(Float)
    decode_replicas_unconstrained: Mapped[int | None] = mapped_column(Integer)
    decode_replicas_after_min: Mapped[int | None] = mapped_column(Integer)
    decode_replicas_after_cap: Mapped[int | None] = mapped_column(Integer)
    decode_replicas: Mapped[int | None] = mapped_column(Integer)
    # budget
    prefill_engine_num_gpu: Mapped[int] = mapped_column(Integer)
    decode_engine_num_gpu: Mapped[int] = mapped_column(Integer)
    min_endpoint: Mapped[int] = mapped_column(Integer)
    max_gpu_budget: Mapped[int] = mapped_column(Integer)
    gpus_before_budget: Mapped[int | None] = mapped_column(Integer)
    budget_scale: Mapped[float | None] = mapped_column(Float)
    budget_limited: Mapped[bool] = mapped_column(Boolean)
    budget_exceeded: Mapped[bool] = mapped_column(Boolean)
    prefill_gpus: Mapped[int] = mapped_column(Integer)
    decode_gpus: Mapped[int] = mapped_column(Integer)
    total_gpus: Mapped[int] = mapped_column(Integer)
    # safety rails (planner_core.safety); NULL on rows older than migration 0009
    scale_down_max_percent: Mapped[float | None] = mapped_column(Float)
    prefill_scale_down_floor: Mapped[int | None] = mapped_column(Integer)
    decode_scale_down_floor: Mapped[int | None] = mapped_column(Integer)
    prefill_replicas_before_scale_down_limit: Mapped[int | None] = mapped_column(Integer)
    decode_replicas_before_scale_down_limit: Mapped[int | None] = mapped_column(Integer)
    scale_down_limited: Mapped[bool | None] = mapped_column(Boolean)
    metrics_age_s: Mapped[float | None] = mapped_column(Float)
    max_metrics_age_s: Mapped[float | None] = mapped_column(Float)
    details: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)


class ScalingActionRow(Base):
    """A request to a connector, written (``pending``) before the connector is called."""

    __tablename__ = "scaling_actions"
    __table_args__ = (
        Index("ix_scaling_actions_deployment_requested", "deployment_id", "requested_at"),
        Index("ix_scaling_actions_deployment_outcome", "deployment_id", "outcome"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id", ondelete="CASCADE"), index=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"))
    connector: Mapped[str] = mapped_column(String(64))
    target_prefill: Mapped[int | None] = mapped_column(Integer)
    target_decode: Mapped[int | None] = mapped_column(Integer)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(32))  # pending | applied | unchanged | error ...
    error: Mapped[str | None] = mapped_column(Text)


class PredictorStateRow(Base):
    """Serialised predictor state per deployment, series and predictor (warm start)."""

    __tablename__ = "predictor_state"
    __table_args__ = (UniqueConstraint("deployment_id", "series", "predictor", name="uq_predictor_state_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"))
    series: Mapped[str] = mapped_column(String(32))
    predictor: Mapped[str] = mapped_column(String(64))
    # JSON written by Python's json module (NaN and Infinity survive the round trip).
    state_json: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CycleLockRow(Base):
    """Who is planning a deployment now (see :mod:`planner_core.store.lock`)."""

    __tablename__ = "cycle_locks"

    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"), primary_key=True)
    token: Mapped[str | None] = mapped_column(String(64))
    holder: Mapped[str | None] = mapped_column(String(255))  # host:pid
    run_id: Mapped[int | None] = mapped_column(BigInteger)
    acquired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


VIEW_NAMES = ("v_runs", "v_decisions", "v_gpu_hours_daily", "v_sla_misses")
