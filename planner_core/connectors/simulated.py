"""The replay's cluster as a connector: targets go to the in-process simulator."""

from __future__ import annotations

from datetime import datetime

from planner_core.connectors.base import component_targets
from planner_core.ports import DeploymentInfo
from planner_core.records import Replicas, ScalingOutcome
from planner_core.sim.cluster import ClusterSimulator

POOLS = {"prefill": "prefill", "decode": "decode"}


class SimulatedClusterConnector:
    """Connector over :class:`~planner_core.sim.cluster.ClusterSimulator` (the replay's cluster)."""

    name = "simulator"

    def __init__(self, sim: ClusterSimulator) -> None:
        self.sim = sim

    def validate(self) -> DeploymentInfo:
        return DeploymentInfo(
            model_name=None,
            prefill_engine_num_gpu=self.sim.prefill_engine_num_gpu,
            decode_engine_num_gpu=self.sim.decode_engine_num_gpu,
            prefill_component="prefill",
            decode_component="decode",
        )

    def current_replicas(self) -> Replicas:
        r = self.sim.replicas()
        return Replicas(r["prefill"]["target"], r["decode"]["target"])

    def ready_replicas(self) -> Replicas:
        r = self.sim.replicas()
        return Replicas(r["prefill"]["ready"], r["decode"]["ready"])

    def rolling_out(self) -> str | None:
        """Workers still starting (pods not yet Ready). Draining workers take no new work: they do not count."""
        r = self.sim.replicas()
        starting = [f"{pool}: {r[pool]['starting']} starting" for pool in POOLS if r[pool]["starting"]]
        return ", ".join(starting) or None

    def apply(self, targets: Replicas, decision_id: int | None, requested_at: datetime) -> ScalingOutcome:
        component_targets(targets, POOLS)  # refuses an empty request
        before = self.current_replicas()
        self.sim.set_targets(targets)
        changed = (targets.prefill is not None and targets.prefill != before.prefill) or (
            targets.decode is not None and targets.decode != before.decode
        )
        return ScalingOutcome(
            connector=self.name,
            requested=targets,
            outcome="applied" if changed else "unchanged",
            requested_at=requested_at,
            acknowledged_at=requested_at,
        )
