"""Prefect flows of the planner: ``plan`` (scheduled), ``replan`` (by hand), ``refit`` and ``replay``."""
