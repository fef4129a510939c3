"""ARIMA refits run outside the cycle (the refit flow), and none is lost."""

from __future__ import annotations

import pytest

from planner_core.config import PlannerConfig
from planner_core.predictors.arima import AutoArima
from planner_core.refit import refit_deployment
from planner_core.runtime import open_cycle
from planner_core.store import Store
from tests.flow_support import SimWorld

INTERVAL_S = 60
CONFIG = PlannerConfig(environment="virtual", load_predictor="arima", adjustment_interval_s=INTERVAL_S)


def _cycle(world: SimWorld, store: Store, k: int):
    cycle = open_cycle(CONFIG, "llama", store, ports=world.ports(CONFIG, "llama"))
    end = world.window_end(k, INTERVAL_S)
    world.clock.set(end)
    result = cycle.run(window_end=end)
    assert result.status in ("ok", "held"), result.error
    return cycle


def _arima_state(store: Store, deployment_id: int) -> dict:
    state = store.load_predictor_state(deployment_id, "num_req", "arima")
    assert state is not None
    return state["model"]


def test_plan_cycles_never_search_and_the_refit_merges_the_due_fit(sqlite_url):
    world = SimWorld(CONFIG)
    with Store(sqlite_url) as store:
        cycles = [_cycle(world, store, k) for k in range(6)]
        # Every cycle ran in its own "process" (a fresh predictor from the stored state) and none searched.
        assert all(c.predictor.series["num_req"].model.fits == 0 for c in cycles)
        deployment_id = cycles[-1].deployment_id
        state = _arima_state(store, deployment_id)
        assert state["n"] == 6 and state["fit_at"] is None  # refit point 5 is due

        outcomes = {r.series: r for r in refit_deployment(store, deployment_id)}
        assert outcomes["num_req"].outcome == "fitted" and outcomes["num_req"].refit_point == 5
        state = _arima_state(store, deployment_id)
        assert state["fit_at"] == 5 and state["n"] == 6 and state["params"]

        again = {r.series: r.outcome for r in refit_deployment(store, deployment_id)}
        assert again["num_req"] == "up_to_date"
        # The next cycle forecasts with the merged fit, still without searching.
        nxt = _cycle(world, store, 6)
        model = nxt.predictor.series["num_req"].model
        assert isinstance(model, AutoArima) and model.fit_at == 5 and model.fits == 0


def test_a_cycle_saved_during_the_search_keeps_its_samples_and_gets_the_fit(sqlite_url, monkeypatch):
    world = SimWorld(CONFIG)
    with Store(sqlite_url) as store:
        deployment_id = [_cycle(world, store, k) for k in range(6)][-1].deployment_id
        search = AutoArima.search
        cycles_run = []

        def search_while_a_cycle_runs(self, r):
            fitted = search(self, r)
            if not cycles_run:  # a plan cycle saves a newer state before the first merge
                cycles_run.append(_cycle(world, store, 6))
            return fitted

        monkeypatch.setattr(AutoArima, "search", search_while_a_cycle_runs)
        outcomes = {r.series: r.outcome for r in refit_deployment(store, deployment_id)}
        assert outcomes["num_req"] == "fitted"
        state = _arima_state(store, deployment_id)
        assert state["n"] == 7 and state["fit_at"] == 5  # the 7th sample kept, the fit merged


def test_a_newer_fit_is_not_replaced_by_an_older_one():
    model = AutoArima(window_size=50)
    for v in [3, 5, 4, 6, 8, 7, 9, 12, 11, 10]:
        model.update(float(v), 0.0)
    assert model.due_refit() == 10
    assert model.adopt(10, None) is True
    assert model.adopt(5, ({"order": [1, 0, 0]}, [0.5, 1.0])) is False
    assert model.fit_at == 10


@pytest.mark.prefect
def test_refit_flow(prefect_harness, sqlite_url):
    from flows.refit import refit

    world = SimWorld(CONFIG)
    with Store(sqlite_url) as store:
        for k in range(6):
            _cycle(world, store, k)
    rows = refit(db_url=sqlite_url)
    assert {(r["deployment"], r["series"], r["outcome"]) for r in rows} >= {("dynamo/llama", "num_req", "fitted")}
    assert refit(deployments=["elsewhere"], db_url=sqlite_url) == []
