"""SQL audit store: every observation, prediction, decision and scaling action.

SQLite by default (``sqlite:///planner.db``, WAL), PostgreSQL in production (psycopg 3); the
schema is managed by the Alembic migrations in ``migrations/``.
"""

from planner_core.store.errors import LockBusy, StoreError
from planner_core.store.lock import CycleLock

# (registers the virtual connector's table on the models' metadata)
from planner_core.store import scaling_requests  # noqa: F401  isort: skip
from planner_core.store.repository import (
    DEFAULT_URL,
    ENV_URL,
    SERIES,
    PendingAction,
    Store,
    decision_from_row,
    make_engine,
    resolve_url,
)

__all__ = [
    "DEFAULT_URL",
    "ENV_URL",
    "SERIES",
    "CycleLock",
    "LockBusy",
    "PendingAction",
    "Store",
    "StoreError",
    "decision_from_row",
    "make_engine",
    "resolve_url",
]
