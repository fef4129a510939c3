"""Helpers of the flow tests: the simulated deployment and a metrics backend that is down."""

from __future__ import annotations

from datetime import datetime

from planner_core.records import Observation
from planner_core.sim.world import EPOCH, SimWorld

__all__ = ["EPOCH", "BrokenMetrics", "SimWorld"]


class BrokenMetrics:
    """A metrics source whose backend is down: every fetch raises, as an HTTP client would."""

    def __init__(self) -> None:
        self.calls = 0

    def observe(self, window_start: datetime, window_end: datetime) -> Observation:
        self.calls += 1
        raise ConnectionError("Prometheus at http://127.0.0.1:1 refused the connection")
