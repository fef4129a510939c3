"""Scaling requests of the virtual connector: the planner writes one per decision, an outside
system (the environment that really scales) acknowledges it.

Lifecycle of a row: ``pending`` -> ``acknowledged`` (the outside system scaled), ``superseded``
(a newer decision replaced it before anyone acknowledged it) or ``timed_out`` (nobody
acknowledged it within ``SCALING_MAX_WAIT_TIME``). At most one request per deployment is
pending: writing a new one supersedes the old one in the same transaction, under a lock on the
deployment's row, so two planners sharing a store cannot leave two pending requests behind.

When a request is resolved, the ``scaling_actions`` row of its decision gets the outcome, so
``v_decisions`` and the SQL cookbook queries see the acknowledgement like any other connector's.

The outside system's API is :func:`pending_request` and :func:`acknowledge` (and the CLI
``sla-planner virtual pending|ack``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Table, Text, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column

from planner_core.records import Replicas
from planner_core.store.errors import StoreError
from planner_core.store.models import Base, BigId, Deployment, ScalingActionRow, UTCDateTime

PENDING, ACKNOWLEDGED, SUPERSEDED, TIMED_OUT = "pending", "acknowledged", "superseded", "timed_out"
# What the decision's scaling_actions row says once its request is resolved.
ACTION_OUTCOME = {ACKNOWLEDGED: "applied", SUPERSEDED: "superseded", TIMED_OUT: "timed_out"}
# The outcome the virtual connector reports at once: asked, not yet acknowledged.
REQUESTED = "requested"


class ScalingRequestRow(Base):
    """One decision handed to an outside system by the virtual connector."""

    __tablename__ = "scaling_requests"
    __table_args__ = (
        Index("ix_scaling_requests_deployment_status", "deployment_id", "status"),
        Index("ix_scaling_requests_deployment_requested", "deployment_id", "requested_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"))
    decision_id: Mapped[int | None] = mapped_column(ForeignKey("decisions.id", ondelete="SET NULL"), index=True)
    target_prefill: Mapped[int | None] = mapped_column(Integer)
    target_decode: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # pending | acknowledged | superseded | timed_out
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    requested_by: Mapped[str | None] = mapped_column(String(255))  # the planner (host:pid)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(255))
    # What the outside system says it runs now (defaults to the targets).
    running_prefill: Mapped[int | None] = mapped_column(Integer)
    running_decode: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(Text)


REQ: Table = ScalingRequestRow.__table__  # type: ignore[assignment]
DEP: Table = Deployment.__table__  # type: ignore[assignment]
ACT: Table = ScalingActionRow.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class ScalingRequest:
    id: int
    deployment_id: int
    decision_id: int | None
    targets: Replicas
    status: str
    requested_at: datetime
    requested_by: str | None
    resolved_at: datetime | None
    acknowledged_by: str | None
    running: Replicas
    note: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "deployment_id": self.deployment_id,
            "decision_id": self.decision_id,
            "target_prefill": self.targets.prefill,
            "target_decode": self.targets.decode,
            "status": self.status,
            "requested_at": self.requested_at.isoformat(),
            "requested_by": self.requested_by,
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "acknowledged_by": self.acknowledged_by,
            "running_prefill": self.running.prefill,
            "running_decode": self.running.decode,
            "note": self.note,
        }


def _request(row: Any) -> ScalingRequest:
    return ScalingRequest(
        id=int(row.id),
        deployment_id=int(row.deployment_id),
        decision_id=row.decision_id,
        targets=Replicas(row.target_prefill, row.target_decode),
        status=row.status,
        requested_at=row.requested_at,
        requested_by=row.requested_by,
        resolved_at=row.resolved_at,
        acknowledged_by=row.acknowledged_by,
        running=Replicas(row.running_prefill, row.running_decode),
        note=row.note,
    )


def _aware(value: datetime | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: pass a timezone-aware UTC datetime")
    return value


# Advisory-lock namespace of the scaling-request writers (the second key is the deployment id).
_REQUESTS_LOCK_CLASS = 7243


def _lock_deployment(conn: Connection, deployment_id: int) -> None:
    """Serialise writers of one deployment's requests (SQLite's write lock already does).

    Not a row lock on ``deployments``: the planning cycle holds that row ``FOR NO KEY UPDATE``
    for the whole cycle (planner_core/store/lock.py), so a ``FOR UPDATE`` here, taken by the
    virtual connector inside the cycle on another connection, would wait on its own cycle forever,
    and the outside system's acknowledgement with it. A transaction-scoped advisory lock on its
    own key serialises only the request writers."""
    if conn.execute(select(DEP.c.id).where(DEP.c.id == deployment_id)).first() is None:
        raise StoreError(f"unknown deployment id {deployment_id}")
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_advisory_xact_lock(:cls, :dep)"), {"cls": _REQUESTS_LOCK_CLASS, "dep": deployment_id}
        )


def _resolve(conn: Connection, where: Any, status: str, at: datetime, **values: Any) -> list[ScalingRequest]:
    """Move the matching pending requests to ``status`` and copy it to their scaling actions."""
    rows = conn.execute(
        update(REQ)
        .where(REQ.c.status == PENDING, where)
        .values(status=status, resolved_at=at, **values)
        .returning(*REQ.c)
    ).all()
    resolved = [_request(r) for r in rows]
    decision_ids = [r.decision_id for r in resolved if r.decision_id is not None]
    if decision_ids:
        conn.execute(
            update(ACT)
            .where(ACT.c.decision_id.in_(decision_ids), ACT.c.outcome.in_(("pending", REQUESTED)))
            .values(
                outcome=ACTION_OUTCOME[status],
                acknowledged_at=at if status == ACKNOWLEDGED else None,
                error=None if status == ACKNOWLEDGED else values.get("note"),
            )
        )
    return resolved


def submit_request(
    store: Any,
    deployment_id: int,
    targets: Replicas,
    decision_id: int | None = None,
    requested_at: datetime | None = None,
    requested_by: str | None = None,
) -> ScalingRequest:
    """Write a pending request for ``targets``; a still-pending older one is superseded."""
    at = _aware(requested_at)
    with store.engine.begin() as conn:
        _lock_deployment(conn, deployment_id)
        _resolve(
            conn,
            REQ.c.deployment_id == deployment_id,
            SUPERSEDED,
            at,
            note="superseded by a newer decision before it was acknowledged",
        )
        row = conn.execute(
            REQ.insert()
            .values(
                deployment_id=deployment_id,
                decision_id=decision_id,
                target_prefill=targets.prefill,
                target_decode=targets.decode,
                status=PENDING,
                requested_at=at,
                requested_by=requested_by,
            )
            .returning(*REQ.c)
        ).one()
    return _request(row)


def deployment_id_of(store: Any, deployment: int | str) -> int:
    """A deployment id from an id, a name or ``namespace/name``."""
    if isinstance(deployment, int):
        return deployment
    namespace, _, name = deployment.rpartition("/")
    dep_id = store.deployment_id(name, namespace or None)
    if dep_id is None:
        raise StoreError(f"no deployment named {deployment!r} in the store; check the name (or namespace/name)")
    return int(dep_id)


def get_request(store: Any, request_id: int) -> ScalingRequest | None:
    with store.engine.connect() as conn:
        row = conn.execute(select(REQ).where(REQ.c.id == request_id)).first()
    return _request(row) if row is not None else None


def latest_request(store: Any, deployment: int | str, status: str | None = None) -> ScalingRequest | None:
    dep_id = deployment_id_of(store, deployment)
    q = select(REQ).where(REQ.c.deployment_id == dep_id)
    if status is not None:
        q = q.where(REQ.c.status == status)
    with store.engine.connect() as conn:
        row = conn.execute(q.order_by(REQ.c.requested_at.desc(), REQ.c.id.desc()).limit(1)).first()
    return _request(row) if row is not None else None


def pending_request(store: Any, deployment: int | str) -> ScalingRequest | None:
    """The request an outside system should carry out for ``deployment`` now, if any."""
    return latest_request(store, deployment, PENDING)


def acknowledge(
    store: Any,
    deployment: int | str,
    request_id: int | None = None,
    running: Replicas | None = None,
    by: str | None = None,
    at: datetime | None = None,
) -> ScalingRequest:
    """Say that the pending request (``request_id``, or the deployment's pending one) is done.

    ``running`` is what the outside system runs now (default: the request's targets). A request
    that is no longer pending (superseded, timed out or already acknowledged) is refused with a
    message saying which request is current."""
    dep_id = deployment_id_of(store, deployment)
    when = _aware(at)
    with store.engine.begin() as conn:
        _lock_deployment(conn, dep_id)
        if request_id is None:
            row = conn.execute(
                select(REQ).where(REQ.c.deployment_id == dep_id, REQ.c.status == PENDING).order_by(REQ.c.id.desc())
            ).first()
            if row is None:
                raise StoreError(f"no pending scaling request for deployment {deployment!r}; nothing to acknowledge")
        else:
            row = conn.execute(select(REQ).where(REQ.c.id == request_id, REQ.c.deployment_id == dep_id)).first()
            if row is None:
                raise StoreError(f"no scaling request {request_id} for deployment {deployment!r}")
            if row.status != PENDING:
                current = conn.execute(
                    select(REQ.c.id).where(REQ.c.deployment_id == dep_id, REQ.c.status == PENDING)
                ).scalar()
                hint = f"the pending one is {current}" if current else "none is pending"
                raise StoreError(f"scaling request {request_id} is {row.status}, not pending; {hint}")
        targets = Replicas(row.target_prefill, row.target_decode)
        now_running = running or targets
        (done,) = _resolve(
            conn,
            REQ.c.id == row.id,
            ACKNOWLEDGED,
            when,
            acknowledged_by=by,
            running_prefill=now_running.prefill,
            running_decode=now_running.decode,
        )
    return done


def expire_requests(store: Any, deployment_id: int, now: datetime, max_wait_s: float) -> list[ScalingRequest]:
    """Mark the deployment's requests pending for longer than ``max_wait_s`` as timed out."""
    cutoff = _aware(now) - timedelta(seconds=max_wait_s)
    with store.engine.begin() as conn:
        return _resolve(
            conn,
            (REQ.c.deployment_id == deployment_id) & (REQ.c.requested_at <= cutoff),
            TIMED_OUT,
            _aware(now),
            note=f"not acknowledged within {max_wait_s:g} s (SCALING_MAX_WAIT_TIME)",
        )


def sync_action_outcome(store: Any, request: ScalingRequest) -> None:
    """Copy a resolved request's status to its decision's scaling action (idempotent): the
    cycle records the connector's immediate ``requested`` after the call, which may land after
    a fast acknowledgement."""
    if request.status == PENDING or request.decision_id is None:
        return
    with store.engine.begin() as conn:
        conn.execute(
            update(ACT)
            .where(ACT.c.decision_id == request.decision_id, ACT.c.outcome.in_(("pending", REQUESTED)))
            .values(
                outcome=ACTION_OUTCOME[request.status],
                acknowledged_at=request.resolved_at if request.status == ACKNOWLEDGED else None,
                error=None if request.status == ACKNOWLEDGED else request.note,
            )
        )
