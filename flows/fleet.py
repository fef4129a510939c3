"""``plan-fleet``: one planning cycle for each of many deployments, in one flow run.

A ``plan`` flow run is a new Python process (Prefect spawns one per run): seconds of CPU for the
imports, the start-up and the run's API calls, around a cycle of about a tenth of that. One
``plan`` deployment per model is right for a few models; for tens of them on a small machine that
start-up is most of the work (``benchmarks/bench_fleet.py --layout per-deployment``). ``plan-fleet``
pays it once per interval: each deployment's cycle runs as its own task, in threads, with its own store
session, cycle lock, metrics and connector, exactly as ``plan`` runs it (``benchmarks/bench_fleet.py``
measures both layouts).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait
from prefect.states import Completed, Failed, State
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, ConfigDict, Field

from flows.common import plan_one_cycle
from flows.plan import DEFAULT_SETTINGS
from planner_core.config import PlannerConfig
from planner_core.runtime import merged_config
from planner_core.store import Store

# Cycles of the fleet that run at once: each waits on Prometheus, the database and the cluster
# API most of its time, so more threads than cores.
FLEET_THREADS = 8


class PlannedDeployment(BaseModel):
    """One member of the fleet: its name (the DynamoGraphDeployment) and the settings it sets."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, description="the planned deployment (DynamoGraphDeployment) name")
    settings: PlannerConfig = Field(DEFAULT_SETTINGS, description="settings of this deployment (else environment)")


@task(name="plan-deployment", cache_policy=NO_CACHE, persist_result=False)
def plan_deployment(member: PlannedDeployment, db_url: str | None) -> State:
    return plan_one_cycle(member.name, merged_config(member.settings), db_url=db_url, trigger="schedule")


@flow(
    name="plan-fleet",
    persist_result=False,
    validate_parameters=True,
    task_runner=ThreadPoolTaskRunner(max_workers=FLEET_THREADS),  # type: ignore[arg-type]
)
def plan_fleet(deployments: list[PlannedDeployment], db_url: str | None = None) -> State:
    """Plan every deployment of ``deployments`` for the next interval, each in its own task; the
    run fails when any cycle failed (each cycle's run row says why) and completes otherwise."""
    # The schema is checked (a new SQLite file created) once, here: not by every thread at once.
    Store(db_url).close()
    futures = [plan_deployment.submit(member, db_url) for member in deployments]
    wait(futures)
    states = [f.state for f in futures]
    failed = [m.name for m, s in zip(deployments, states, strict=True) if not s.is_completed()]
    summary: dict[str, Any] = {"planned": len(deployments), "failed": failed}
    message = f"{len(deployments) - len(failed)} of {len(deployments)} deployments planned"
    if failed:
        return Failed(message=f"{message}; failed: {', '.join(failed)}", data=summary)
    return Completed(message=message, data=summary)
