"""Thin Prefect tasks over :mod:`planner_core` (one per cycle step, plus artifacts)."""
