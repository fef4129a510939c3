"""The body the ``plan`` and ``replan`` flows share: open the store, run one cycle, publish it."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from prefect import get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State

from planner_core import summary
from planner_core.config import PlannerConfig
from planner_core.logs import log_to_dir
from planner_core.records import Replicas
from planner_core.runtime import open_cycle
from planner_core.store import Store
from tasks.artifacts import publish_decision
from tasks.steps import PrefectSteps


def current_flow_run_id() -> str | None:
    run_id = flow_run.get_id()
    return str(run_id) if run_id else None


def plan_one_cycle(
    deployment: str,
    config: PlannerConfig,
    *,
    db_url: str | None,
    trigger: str,
    window_end: datetime | None = None,
    lock_wait_s: float = 0.0,
    pinned: Replicas | None = None,
    reason: str | None = None,
) -> State:
    """One cycle for ``deployment``; the flow run fails when the cycle did (the cycle's run
    row says why), and completes with a message when another run held the lock."""
    log: logging.Logger | logging.LoggerAdapter[Any] = get_run_logger()
    if config.log_dir:  # --log-dir / PLANNER_LOG_DIR: the planner's records in a file too
        log_to_dir(config.log_dir)
    with Store(db_url) as store:
        cycle = open_cycle(config, deployment, store, trigger=trigger, pinned=pinned, reason=reason)
        end = window_end or cycle.clock.now()
        cycle.step = PrefectSteps(deployment, end)
        result = cycle.run(flow_run_id=current_flow_run_id(), window_end=end, lock_wait_s=lock_wait_s)
    line = summary.headline(deployment, result)
    publish_decision(deployment, result)
    out = summary.as_dict(deployment, result)
    if result.status == "error":
        log.error(line)
        return Failed(message=line, data=out)
    log.info(line)
    return Completed(message=line, data=out)
