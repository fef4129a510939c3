"""The planning cycle as a Prefect task."""

from __future__ import annotations

from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from planner_core.cycle import CycleResult, PlanningCycle


@task(
    name="planning-cycle",
    task_run_name="cycle {deployment} {window_end:%Y-%m-%d %H:%M:%S}",
    cache_policy=NO_CACHE,
    persist_result=False,
    timeout_seconds=300,
)
def run_cycle(
    cycle: PlanningCycle, deployment: str, window_end: datetime, flow_run_id: str | None, lock_wait_s: float
) -> CycleResult:
    return cycle.run(flow_run_id=flow_run_id, window_end=window_end, lock_wait_s=lock_wait_s)
