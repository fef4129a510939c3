"""``replan``: re-plan one deployment by hand, from the Prefect UI or the CLI.

The same cycle as ``plan`` with an operator's overrides (SLA targets, budget, predictor,
pinned replicas, dry run) and a required reason; stored with trigger ``manual``, the reason and
the Prefect flow run id.
"""

from __future__ import annotations

from prefect import flow
from prefect.states import State
from pydantic import BaseModel, ConfigDict, Field

from flows.common import plan_one_cycle
from flows.plan import DEFAULT_SETTINGS
from planner_core.config import ConfigError, PlannerConfig
from planner_core.runtime import merged_config, pinned_replicas

# A manual run waits this long for a scheduled cycle of the same deployment to finish.
REPLAN_LOCK_WAIT_S = 60.0
MIN_REASON_CHARS = 3


class ReplanOverrides(BaseModel):
    """What to change for this one cycle; empty fields keep the deployment's settings."""

    model_config = ConfigDict(extra="forbid")

    ttft_ms: float | None = Field(None, gt=0, description="time-to-first-token SLA for this cycle, ms")
    itl_ms: float | None = Field(None, gt=0, description="inter-token latency SLA for this cycle, ms")
    max_gpu_budget: int | None = Field(None, gt=0, description="GPU budget for this cycle")
    load_predictor: str | None = Field(None, description="load predictor for this cycle")
    prefill_replicas: int | None = Field(None, ge=0, description="pin the prefill pool to this many replicas")
    decode_replicas: int | None = Field(None, ge=0, description="pin the decode pool to this many replicas")
    dry_run: bool = Field(False, description="decide and record, scale nothing")


@flow(name="replan", persist_result=False, validate_parameters=True)
def replan(
    deployment: str,
    reason: str,
    overrides: ReplanOverrides = ReplanOverrides.model_validate({}),  # noqa: B008 - pydantic defaults are immutable here
    settings: PlannerConfig = DEFAULT_SETTINGS,
    db_url: str | None = None,
) -> State:
    """Re-plan ``deployment`` now with ``overrides``; ``reason`` (required) says why and is
    stored with the run, with trigger ``manual`` and this flow run's id."""
    if len(reason.strip()) < MIN_REASON_CHARS:
        raise ConfigError(
            f"reason: say why you re-plan by hand (at least {MIN_REASON_CHARS} characters); got {reason!r}"
        )
    config = merged_config(
        settings,
        ttft_ms=overrides.ttft_ms,
        itl_ms=overrides.itl_ms,
        max_gpu_budget=overrides.max_gpu_budget,
        load_predictor=overrides.load_predictor,
        no_operation=True if overrides.dry_run else None,
    )
    return plan_one_cycle(
        deployment,
        config,
        db_url=db_url,
        trigger="manual",
        lock_wait_s=REPLAN_LOCK_WAIT_S,
        pinned=pinned_replicas(overrides.prefill_replicas, overrides.decode_replicas),
        reason=reason.strip(),
    )
