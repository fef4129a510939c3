"""``--no-operation``: any connector reads the cluster as usual and scales nothing."""

from __future__ import annotations

import logging
from datetime import datetime

from planner_core.connectors.base import component_targets
from planner_core.ports import Connector, DeploymentInfo
from planner_core.records import Replicas, ScalingOutcome

log = logging.getLogger("sla_planner.connectors")


class NoOperationConnector:
    """Wraps a connector: reads go to it, ``apply`` records what it would have asked for.

    Without an inner connector (nothing to read) the replicas are those it was given, updated
    by each recorded request, so a dry run still sees its own earlier decisions."""

    def __init__(self, inner: Connector | None = None, current: Replicas | None = None) -> None:
        self.inner = inner
        self.name = f"no-operation({inner.name})" if inner is not None else "no-operation"
        self._current = current or Replicas(None, None)
        self.requests: list[tuple[datetime, Replicas]] = []  # what it would have done, oldest first

    def validate(self) -> DeploymentInfo:
        if self.inner is not None:
            return self.inner.validate()
        return DeploymentInfo(None, None, None)

    def current_replicas(self) -> Replicas:
        return self.inner.current_replicas() if self.inner is not None else self._current

    def ready_replicas(self) -> Replicas:
        return self.inner.ready_replicas() if self.inner is not None else self._current

    def rolling_out(self) -> str | None:
        return self.inner.rolling_out() if self.inner is not None else None

    def apply(self, targets: Replicas, decision_id: int | None, requested_at: datetime) -> ScalingOutcome:
        component_targets(targets, {"prefill": "prefill", "decode": "decode"})  # same refusal as a real one
        self.requests.append((requested_at, targets))
        if self.inner is None:
            self._current = Replicas(
                targets.prefill if targets.prefill is not None else self._current.prefill,
                targets.decode if targets.decode is not None else self._current.decode,
            )
        log.info(
            "no-operation: would scale prefill to %s, decode to %s (decision %s)",
            targets.prefill,
            targets.decode,
            decision_id,
        )
        return ScalingOutcome(connector=self.name, requested=targets, outcome="dry_run", requested_at=requested_at)
