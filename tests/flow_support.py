"""A simulated deployment for the flow tests: the replay's simulated frontend and cluster over a
short synthetic workload, with a clock the test sets to each window end."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import numpy as np

from planner_core.config import PlannerConfig
from planner_core.ports import SimulatedClock
from planner_core.profiles import load_profile
from planner_core.records import Observation, Replicas
from planner_core.runtime import Ports
from planner_core.sim.cluster import ClusterSimulator
from planner_core.sim.replay import SimulatedClusterConnector, SimulatedFrontend

EPOCH = datetime(2026, 3, 1, tzinfo=UTC)


class SimWorld:
    """One simulated deployment shared by every cycle a test runs."""

    def __init__(self, config: PlannerConfig, rate_per_s: float = 4.0, duration_s: float = 1800.0, seed: int = 0):
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
            initial=Replicas(1, 1),
            startup_s=0.0,
        )
        self.clock = SimulatedClock(EPOCH)
        self.frontend = SimulatedFrontend(self.sim, EPOCH, self.arrival_s)
        self.connector = SimulatedClusterConnector(self.sim)
        self.lock = threading.Lock()

    def window_end(self, k: int, interval_s: float) -> datetime:
        return EPOCH + timedelta(seconds=(k + 1) * interval_s)

    def ports(self, config: PlannerConfig, deployment: str) -> Ports:
        return Ports(metrics=self.frontend, connector=self.connector, clock=self.clock)

    def replicas(self) -> Replicas:
        return self.connector.current_replicas()


class BrokenMetrics:
    """A metrics source whose backend is down: every fetch raises, as an HTTP client would."""

    def __init__(self) -> None:
        self.calls = 0

    def observe(self, window_start: datetime, window_end: datetime) -> Observation:
        self.calls += 1
        raise ConnectionError("Prometheus at http://127.0.0.1:1 refused the connection")
