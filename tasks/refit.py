"""The ARIMA refit of one deployment as a Prefect task."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from planner_core.refit import SeriesRefit, refit_deployment
from planner_core.store import Store


# Safe to retry: a refit merges a fit only into a state that lacks a newer one.
@task(
    name="refit-deployment",
    task_run_name="refit {deployment}",
    cache_policy=NO_CACHE,
    persist_result=False,
    retries=2,
    retry_delay_seconds=5,
    timeout_seconds=600,
)
def refit_one(store: Store, deployment_id: int, deployment: str) -> list[SeriesRefit]:
    return refit_deployment(store, deployment_id)
