"""Cluster simulator, oracle baseline and workload tools for replaying traces against a planner."""

from planner_core.sim.cluster import ClusterSimulator, IntervalMetrics, RequestResults
from planner_core.sim.oracle import oracle_gpu_seconds, oracle_replicas
from planner_core.sim.workload import load_scale

__all__ = [
    "ClusterSimulator",
    "IntervalMetrics",
    "RequestResults",
    "load_scale",
    "oracle_gpu_seconds",
    "oracle_replicas",
]
