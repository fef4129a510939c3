"""``check-queue``: the queue checks between two ``plan`` cycles, as one flow run per interval.

A burst that starts just after a cycle would wait for the next one, and for a worker's start-up
after it. Every ``--queue-check-interval`` seconds this flow reads the frontend's last seconds
and, when prompts wait for a first token past the TTFT budget, adds prefill engines at once
(:mod:`planner_core.surge`). Scheduled every adjustment interval beside the deployment's ``plan``
(see ``prefect.yaml``), each run checks until just before the next one starts. A check that
scales is stored as a run with trigger ``queue``; the others write nothing.
"""

from __future__ import annotations

import time

from prefect import flow, get_run_logger
from prefect.states import Completed, State

from flows.plan import DEFAULT_SETTINGS
from planner_core.config import PlannerConfig
from planner_core.policies import policy_for
from planner_core.runtime import merged_config, open_cycle
from planner_core.store import Store
from tasks.steps import PrefectSteps


@flow(name="check-queue", persist_result=False, validate_parameters=True)
def check_queue(
    deployment: str,
    settings: PlannerConfig = DEFAULT_SETTINGS,
    db_url: str | None = None,
    duration_s: float | None = None,
) -> State:
    """Check ``deployment``'s prefill queue every ``queue_check_interval_s`` for ``duration_s``
    seconds (default: one adjustment interval less one check, so that consecutive runs of a
    deployment scheduled every interval do not overlap). ``settings`` and ``db_url`` as for ``plan``."""
    log = get_run_logger()
    config = merged_config(settings)
    every_s = policy_for(config.policy).queue_check_interval_s(config)
    if every_s <= 0:
        message = f"{deployment}: queue checks are off (policy {config.policy.value}, interval {every_s:g} s)"
        log.info(message)
        return Completed(message=message, data={"checks": 0, "scaled": 0})
    duration = duration_s if duration_s is not None else max(0.0, config.adjustment_interval_s - every_s)
    checks = scaled = 0
    deadline = time.monotonic() + duration
    with Store(db_url) as store:
        cycle = open_cycle(config, deployment, store, trigger="queue")
        cycle.step = PrefectSteps(deployment, cycle.clock.now())
        while time.monotonic() + every_s <= deadline:
            time.sleep(every_s)
            checks += 1
            result = cycle.check_queue()
            if result is not None and result.decision is not None:
                scaled += 1
                outcome = result.outcome.outcome if result.outcome is not None else result.status
                log.info("%s: %s (%s)", deployment, result.decision.reason, outcome)
    message = f"{deployment}: {checks} queue checks, {scaled} scaled prefill up"
    log.info(message)
    return Completed(message=message, data={"checks": checks, "scaled": scaled})
