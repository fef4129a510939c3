"""Refitting the ARIMA models outside the planning cycle, so that no refit is ever lost.

A planner that runs one cycle per process (a Prefect flow run) cannot keep a background order
search alive: it would die with the process, and the next run would start it again and lose it
again. So the cycle never searches (``deferred_refit``): it forecasts with the last fit and
saves its state, in which the due refit point stays visible. :func:`refit_deployment` (the
``refit`` flow, on its own schedule) then

1. reads the saved state and searches the due refit point, outside the cycle lock, so the plan
   cycles keep running during the seconds a search takes;
2. under the deployment's cycle lock, re-reads the newest state (a cycle may have saved one
   meanwhile) and merges the fit into it unless it already holds a newer one; the merge only
   sets the fit (order, parameters, refit point), never the samples, so no observation a cycle
   saved is lost either.

A refit interrupted anywhere loses nothing: the refit point stays due in the stored state and
the next refit run searches it (or a newer one).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from threadpoolctl import threadpool_limits

from planner_core.config import PlannerConfig
from planner_core.predictors.arima import AutoArima
from planner_core.predictors.factory import make_predictor

SERIES = ("num_req", "isl", "osl")
REFITTED_PREDICTOR = "arima"  # the one model whose fit is too slow for the cycle
REFIT_LOCK_WAIT_S = 60.0


class RefitStore(Protocol):
    def load_predictor_state(self, deployment_id: int, series: str, predictor: str) -> dict[str, Any] | None: ...
    def save_predictor_state(
        self, deployment_id: int, series: str, predictor: str, state: dict[str, Any], updated_at: datetime
    ) -> None: ...
    def cycle_lock(self, deployment_id: int, wait_s: float = 0.0, ttl_s: float | None = None) -> Any: ...


@dataclass(frozen=True)
class SeriesRefit:
    series: str
    outcome: str  # "fitted" | "up_to_date" | "superseded" | "no_state"
    refit_point: int | None = None
    search_s: float = 0.0


def _arima(state: dict[str, Any]) -> tuple[Any, AutoArima]:
    predictor = make_predictor(REFITTED_PREDICTOR, PlannerConfig.model_validate({"load_predictor": REFITTED_PREDICTOR}))
    predictor.load_state(state)  # the state carries its own window, schedule and log1p
    assert isinstance(predictor.model, AutoArima)
    return predictor, predictor.model


def refit_deployment(
    store: RefitStore, deployment_id: int, now: datetime | None = None, lock_wait_s: float = REFIT_LOCK_WAIT_S
) -> list[SeriesRefit]:
    """Search every due refit point of the deployment's ARIMA models and merge the fits."""
    out = []
    for series in SERIES:
        state = store.load_predictor_state(deployment_id, series, REFITTED_PREDICTOR)
        if state is None:
            out.append(SeriesRefit(series, "no_state"))
            continue
        _, model = _arima(state)
        r = model.due_refit()
        if r is None:
            out.append(SeriesRefit(series, "up_to_date", model.fit_at))
            continue
        started = time.perf_counter()
        # One BLAS thread: the search's small matrices only lose time to thread hand-offs (2-3x
        # slower on a busy 2-core node), and the plan cycles need the other core.
        with threadpool_limits(limits=1):
            fitted = model.search(r)
        search_s = time.perf_counter() - started
        with store.cycle_lock(deployment_id, wait_s=lock_wait_s):
            latest = store.load_predictor_state(deployment_id, series, REFITTED_PREDICTOR) or state
            predictor, newest = _arima(latest)
            if newest.adopt(r, fitted):
                store.save_predictor_state(
                    deployment_id, series, REFITTED_PREDICTOR, predictor.get_state(), now or datetime.now(UTC)
                )
                out.append(SeriesRefit(series, "fitted", r, search_s))
            else:
                out.append(SeriesRefit(series, "superseded", r, search_s))
    return out
