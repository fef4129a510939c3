"""``plan``: one planning cycle of one planned deployment, run every adjustment interval.

Observe the frontend's last interval, forecast the next one, size the prefill and decode pools
from the profile within the GPU budget, scale through the connector, and keep every number in
SQL. Deploy one ``plan`` deployment per planned model (see ``prefect.yaml``).
"""

from __future__ import annotations

from datetime import datetime

from prefect import flow
from prefect.states import State

from flows.common import plan_one_cycle
from planner_core.config import PlannerConfig
from planner_core.runtime import merged_config

DEFAULT_SETTINGS = PlannerConfig.model_validate({})


@flow(name="plan", persist_result=False, validate_parameters=True)
def plan(
    deployment: str,
    settings: PlannerConfig = DEFAULT_SETTINGS,
    db_url: str | None = None,
    window_end: datetime | None = None,
) -> State:
    """Plan ``deployment`` (its DynamoGraphDeployment name) for the next interval.

    ``settings`` takes Dynamo's planner settings; fields left out come from the worker's
    environment (``PLANNER_*``, ``DYN_NAMESPACE``, ``PROMETHEUS_ENDPOINT``) and then the defaults.
    ``db_url`` defaults to ``$PLANNER_DB_URL``. ``window_end`` (default now) ends the observed
    interval. A run that finds another run planning the same deployment skips without changes.
    """
    return plan_one_cycle(deployment, merged_config(settings), db_url=db_url, trigger="schedule", window_end=window_end)
