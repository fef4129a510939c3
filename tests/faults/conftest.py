"""Fixtures of the fault-injection suite (defined in fault_world.py, next to its helpers)."""

from fault_world import kube, metrics, world  # noqa: F401  (pytest fixtures)
