"""Alembic migrations of the planner's audit store (see :mod:`planner_core.store.migrate`)."""
