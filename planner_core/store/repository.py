"""The :class:`Store`: every observation, prediction, decision and scaling action, in SQL.

One facade over parts split by purpose, so callers keep one object:

* :mod:`.core` - engines, schema check, deployments and the cycle lock;
* :mod:`.writes` - what a cycle writes (runs, observations, forecasts, decisions, actions,
  predictor state), audit-first;
* :mod:`.warm_start` - what a (re)started planner reads;
* :mod:`.reporting` - the cycle history (rows defined in :mod:`.cycle_row`);
* :mod:`.retention` - pruning old cycles;
* :mod:`.scaling_requests` - the virtual connector's requests (its own functions, not on the facade);
* :mod:`.postgres` - the PostgreSQL-only fast paths the others call.

Timestamps are passed in (a replay runs on a simulated clock) and must be timezone-aware; they
are stored as UTC and read back as aware UTC datetimes on both SQLite and PostgreSQL.
"""

from __future__ import annotations

from planner_core.store.reporting import HistoryReads
from planner_core.store.retention import Retention
from planner_core.store.warm_start import WarmStartReads
from planner_core.store.writes import CycleWrites


class Store(CycleWrites, WarmStartReads, HistoryReads, Retention):
    """The audit store. ``Store()`` uses ``$PLANNER_DB_URL`` or ``sqlite:///planner.db``."""

    def __enter__(self) -> Store:
        return self
