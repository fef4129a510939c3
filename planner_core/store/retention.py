"""Retention: deleting old cycles, and counting what is kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, update

from planner_core.store.core import StoreCore
from planner_core.store.lock import CL
from planner_core.store.rows import ACT, CFG, DEC, DEP, OBS, PRED, PST, RUN, aware


class Retention(StoreCore):
    def prune(self, older_than: timedelta, now: datetime | None = None) -> dict[str, int]:
        """Delete runs started before ``now - older_than`` with their observations, predictions,
        decisions and actions, and configurations no run uses any more. Deployments and
        predictor state are never touched."""
        if older_than.total_seconds() < 0:
            raise ValueError("older_than must not be negative")
        cutoff = aware(now or datetime.now(UTC), "now") - older_than
        old_runs = select(RUN.c.id).where(RUN.c.started_at < cutoff)
        old_decisions = select(DEC.c.id).where(DEC.c.run_id.in_(old_runs))
        counts: dict[str, int] = {}
        with self.engine.begin() as conn:
            counts["scaling_actions"] = conn.execute(delete(ACT).where(ACT.c.decision_id.in_(old_decisions))).rowcount
            counts["predictions"] = conn.execute(delete(PRED).where(PRED.c.run_id.in_(old_runs))).rowcount
            counts["observations"] = conn.execute(delete(OBS).where(OBS.c.run_id.in_(old_runs))).rowcount
            counts["decisions"] = conn.execute(delete(DEC).where(DEC.c.run_id.in_(old_runs))).rowcount
            conn.execute(update(CL).where(CL.c.run_id.in_(old_runs)).values(run_id=None))
            counts["planner_runs"] = conn.execute(delete(RUN).where(RUN.c.started_at < cutoff)).rowcount
            used = select(RUN.c.config_id).where(RUN.c.config_id.is_not(None))
            counts["planner_configs"] = conn.execute(delete(CFG).where(CFG.c.id.not_in(used))).rowcount
        self._config_ids.clear()
        return counts

    def table_counts(self) -> dict[str, int]:
        """Rows per table (what ``prune`` leaves)."""
        with self.engine.connect() as conn:
            return {
                t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                for t in (DEP, CFG, RUN, OBS, PRED, DEC, ACT, PST)
            }
