"""The narrow interfaces between the planning cycle and the world.

Production plugs in Prometheus, Kubernetes and a wall clock; the closed-loop replay plugs in
the simulated frontend, the simulated cluster and a simulated clock; tests plug in real local
servers. The cycle itself (:mod:`planner_core.cycle`) only sees these protocols.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class DeploymentInfo:
    """What a connector read from the deployment it scales (see ``Connector.validate``)."""

    model_name: str | None
    prefill_engine_num_gpu: int | None
    decode_engine_num_gpu: int | None
    # Kubernetes names of the planned components, or the simulator's pool names.
    prefill_component: str | None = None
    decode_component: str | None = None


class Connector(Protocol):
    """Scales the prefill and decode pools of one deployment.

    ``apply`` sets both planned pools at once; a ``targets`` with neither pool set is refused
    (:class:`planner_core.connectors.EmptyTargetsError`). ``rolling_out`` returns ``None``
    when the last change has settled, else why not (the cycle consults it before scaling)."""

    name: str

    def validate(self) -> DeploymentInfo:
        """Check the deployment can be planned; raise one error naming every problem found."""
        ...

    def current_replicas(self) -> Replicas:
        """Replicas the cluster is asked to run now (None when unknown / not planned)."""
        ...

    def ready_replicas(self) -> Replicas:
        """Replicas that are ready to serve now (None when unknown / not planned)."""
        ...

    def rolling_out(self) -> str | None:
        """``None`` when the last change has settled, else a short reason it has not."""
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
