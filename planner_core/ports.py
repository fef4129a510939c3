"""The narrow interfaces between the planning cycle and the world.

Production plugs in Prometheus, Kubernetes and a wall clock; the closed-loop replay plugs in
the simulated frontend, the simulated cluster and a simulated clock; tests plug in real local
servers. The cycle itself (:mod:`planner_core.cycle`) only sees these protocols.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

from planner_core.records import Observation, Replicas, ScalingOutcome


class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, timezone-aware UTC."""
        ...


class MetricsSource(Protocol):
    def observe(self, window_start: datetime, window_end: datetime) -> Observation:
        """Frontend metrics for the window; missing data as None with ``quality`` set, never 0."""
        ...


class Connector(Protocol):
    name: str

    def current_replicas(self) -> Replicas:
        """Replicas the planner last asked for / the cluster runs now (None when unknown)."""
        ...

    def apply(self, targets: Replicas, decision_id: int | None, requested_at: datetime) -> ScalingOutcome:
        """Ask the cluster for ``targets`` (non-blocking); say what happened."""
        ...


class CycleLockHeld(Exception):
    """Another cycle holds the deployment's cycle lock (the store's ``LockBusy`` is one)."""


class WallClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class SimulatedClock:
    """A clock the replay advances by hand."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("SimulatedClock needs a timezone-aware start time")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)

    def set(self, when: datetime) -> None:
        self._now = when


class NoOperationConnector:
    """Records what would have been asked for; scales nothing (``--no-operation``)."""

    name = "no-operation"

    def __init__(self, current: Replicas | None = None) -> None:
        self._current = current or Replicas(None, None)

    def current_replicas(self) -> Replicas:
        return self._current

    def apply(self, targets: Replicas, decision_id: int | None, requested_at: datetime) -> ScalingOutcome:
        return ScalingOutcome(connector=self.name, requested=targets, outcome="dry_run", requested_at=requested_at)
