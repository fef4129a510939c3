"""The replay's frontend: what Prometheus would report for a window, read from the simulator."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from planner_core.records import Observation, Replicas
from planner_core.sim.cluster import ClusterSimulator

ARRIVAL_COUNT_WINDOW_S = 1.0


def arrival_counts(
    arrival_s: np.ndarray, start_s: float, end_s: float, window_s: float = ARRIVAL_COUNT_WINDOW_S
) -> tuple[int, ...] | None:
    """Requests per ``window_s`` sub-window of [start_s, end_s): the frontend counter at a fine step."""
    bins = int((end_s - start_s) // window_s)
    if bins < 1:
        return None
    lo, hi = np.searchsorted(arrival_s, [start_s, start_s + bins * window_s])
    counts = np.bincount(((arrival_s[lo:hi] - start_s) // window_s).astype(np.int64), minlength=bins)[:bins]
    return tuple(int(c) for c in counts)


class SimulatedFrontend:
    """MetricsSource over the simulator: what Prometheus would report for the window."""

    def __init__(self, sim: ClusterSimulator, epoch: datetime, arrival_s: np.ndarray) -> None:
        self.sim = sim
        self.epoch = epoch
        self.arrival_s = arrival_s

    def _seconds(self, when: datetime) -> float:
        return (when - self.epoch).total_seconds()

    def observe(self, window_start: datetime, window_end: datetime) -> Observation:
        start_s, end_s = self._seconds(window_start), self._seconds(window_end)
        self.sim.advance_to(end_s)
        m = self.sim.metrics(start_s, end_s)
        # The simulated frontend always answers; zero arrivals is genuine zero traffic.
        quality = "ok"
        return Observation(
            window_start=window_start,
            window_end=window_end,
            num_req=m.num_req,
            ttft_ms=m.ttft_ms,
            itl_ms=m.itl_ms,
            isl=m.isl,
            osl=m.osl,
            request_duration_s=m.request_duration_s,
            current=Replicas(m.prefill_replicas, m.decode_replicas),
            quality=quality,
            arrival_counts=arrival_counts(self.arrival_s, start_s, end_s),
            arrival_window_s=ARRIVAL_COUNT_WINDOW_S,
        )
