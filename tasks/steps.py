"""Each step of the planning cycle as a Prefect task.

The cycle (:mod:`planner_core.cycle`) decides the order of the steps and of the writes; this
step runner only wraps each call. Retries only where a retry is safe: the metric fetch (a read)
and the connector call (its targets are absolute, so applying them twice scales once). Every
task has a timeout, persists no result and names the deployment and the interval it plans.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from prefect import Task
from prefect.cache_policies import NO_CACHE

T = TypeVar("T")


class StepOptions(NamedTuple):
    timeout_s: float
    retries: int = 0
    retry_delay_s: float = 2.0


STEP_OPTIONS: dict[str, StepOptions] = {
    "observe": StepOptions(timeout_s=60, retries=2),  # a read: safe to repeat
    "predict": StepOptions(timeout_s=60),
    "size": StepOptions(timeout_s=30),
    "stabilise": StepOptions(timeout_s=30),
    "scale": StepOptions(timeout_s=120, retries=2),  # absolute targets: applying twice scales once
    "record": StepOptions(timeout_s=60),
}


class PrefectSteps:
    """The cycle's step runner inside a flow: ``steps("observe", fn, *args)`` runs a task."""

    def __init__(self, deployment: str, window_end: datetime) -> None:
        self.deployment = deployment
        self.window_end = window_end

    def __call__(self, name: str, fn: Callable[..., T], /, *args: Any) -> T:
        options = STEP_OPTIONS[name]
        wrapped: Task[..., T] = Task(
            fn,
            name=name,
            task_run_name=f"{name} {self.deployment} {self.window_end:%Y-%m-%d %H:%M:%S}",
            cache_policy=NO_CACHE,
            persist_result=False,
            retries=options.retries,
            retry_delay_seconds=options.retry_delay_s,
            timeout_seconds=options.timeout_s,
        )
        return wrapped(*args)
