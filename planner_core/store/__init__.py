"""SQL audit store: every observation, prediction, decision and scaling action.

SQLite by default (``sqlite:///planner.db``, WAL), PostgreSQL in production (psycopg 3); the
schema is managed by the Alembic migrations in ``migrations/``.
"""

from planner_core.records import SERIES
from planner_core.store.engine import DEFAULT_URL, ENV_URL, make_engine, resolve_url
from planner_core.store.errors import LockBusy, StoreError
from planner_core.store.lock import CycleLock
from planner_core.store.repository import Store
from planner_core.store.rows import decision_from_row
from planner_core.store.warm_start import PendingAction

# (registers the virtual connector's table on the models' metadata)
from planner_core.store import scaling_requests  # noqa: F401  isort: skip

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
