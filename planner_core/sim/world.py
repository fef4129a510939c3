"""A simulated deployment the planner can run against in process: the replay's simulated frontend
and cluster over a synthetic Poisson workload, and a clock the caller sets to each window end.

Used by the flow tests and ``benchmarks/bench_flow.py`` through :func:`planner_core.runtime.using_ports`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from planner_core.config import PlannerConfig
from planner_core.connectors.simulated import SimulatedClusterConnector
from planner_core.ports import SimulatedClock
from planner_core.profiles import load_profile
from planner_core.records import Replicas
from planner_core.runtime import Ports
from planner_core.sim.cluster import ClusterSimulator
from planner_core.sim.replay import SimulatedFrontend

EPOCH = datetime(2026, 3, 1, tzinfo=UTC)


class SimWorld:
    """One simulated deployment shared by every cycle run against it."""

    def __init__(
        self,
        config: PlannerConfig,
        rate_per_s: float = 4.0,
        duration_s: float = 1800.0,
        seed: int = 0,
        initial: Replicas | None = None,
    ) -> None:
        rng = np.random.default_rng(seed)
        n = int(rate_per_s * duration_s)
        self.arrival_s = np.sort(rng.uniform(0.0, duration_s, n))
        self.isl = rng.integers(500, 3000, n).astype(np.float64)
        self.osl = rng.integers(50, 300, n).astype(np.float64)
        self.sim = ClusterSimulator(
            load_profile(config.profile_dir()),
            self.arrival_s,
            self.isl,
            self.osl,
            prefill_engine_num_gpu=config.prefill_engine_num_gpu,
            decode_engine_num_gpu=config.decode_engine_num_gpu,
            initial=initial or Replicas(1, 1),
            startup_s=0.0,
            max_num_seqs=config.max_num_seqs,
        )
        self.clock = SimulatedClock(EPOCH)
        # the arrival counts at the resolution the planner is set to read, as in the replay
        self.frontend = SimulatedFrontend(self.sim, EPOCH, self.arrival_s, config.arrival_resolution_s)
        self.connector = SimulatedClusterConnector(self.sim)

    def window_end(self, k: int, interval_s: float) -> datetime:
        """End of the ``k``-th interval (0-based) after the epoch."""
        return EPOCH + timedelta(seconds=(k + 1) * interval_s)

    def ports(self, config: PlannerConfig, deployment: str) -> Ports:
        return Ports(metrics=self.frontend, connector=self.connector, clock=self.clock)

    def replicas(self) -> Replicas:
        return self.connector.current_replicas()
