"""Metrics in and out: the frontend as Prometheus shows it, and the planner's own metrics.

* :mod:`planner_core.metrics.simulated`: the replay's in-process frontend (exact per-window
  means from the cluster simulator).
"""
