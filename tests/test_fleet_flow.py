"""The ``plan-fleet`` flow under a real (test) Prefect server: one flow run plans every member of
the fleet, each cycle with its own ports, lock and rows, exactly as a ``plan`` run would."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from planner_core.config import PlannerConfig
from planner_core.runtime import using_ports
from planner_core.store import Store
from tests.flow_support import BrokenMetrics, SimWorld

pytestmark = pytest.mark.prefect

SETTINGS = PlannerConfig(environment="virtual", load_predictor="constant", adjustment_interval_s=60, max_gpu_budget=16)


def _rows(url: str, sql: str) -> list[Any]:
    with Store(url) as store, store.engine.connect() as conn:
        return list(conn.execute(text(sql)))


def test_plan_fleet_plans_every_member_and_fails_only_for_the_broken_one(prefect_harness, sqlite_url):
    from flows.fleet import PlannedDeployment, plan_fleet
    from planner_core.runtime import Ports

    worlds = {name: SimWorld(SETTINGS, seed=i) for i, name in enumerate(("a", "b", "c"))}
    end = worlds["a"].window_end(0, 60)
    for world in worlds.values():
        world.clock.set(end)

    def ports(config: PlannerConfig, deployment: str) -> Ports:
        world = worlds[deployment]
        metrics = BrokenMetrics() if deployment == "c" else world.frontend
        return Ports(metrics=metrics, connector=world.connector, clock=world.clock)

    members = [PlannedDeployment(name=n, settings=SETTINGS) for n in worlds]
    with using_ports(ports):
        state = plan_fleet(deployments=members, db_url=sqlite_url, return_state=True)
    assert state.is_failed() and "2 of 3 deployments planned" in state.message and "failed: c" in state.message
    runs = _rows(sqlite_url, "SELECT d.name, r.status FROM planner_runs r JOIN deployments d ON d.id = r.deployment_id")
    assert sorted(runs) == [("a", "ok"), ("b", "ok"), ("c", "error")]
    decisions = _rows(sqlite_url, "SELECT run_id FROM decisions")
    assert len(decisions) == 2
